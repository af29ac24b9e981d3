"""A ``dragedit serve`` child process with its own data folder, for the benchmarks and the tests
that kill daemons: start it, wait until its engine is ready, read its memory, stop or kill it."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from dragedit_protocol.client import DaemonClient


def free_local_endpoint() -> str:
    """A loopback endpoint on a port that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


class DaemonProcess:
    """``python -m dragedit serve`` with DRAGEDIT_HOME=home; its output goes to home/serve.out."""

    def __init__(self, home: Path, model: str, endpoint: str | None = None, extra: tuple[str, ...] = ()):
        self.home = Path(home)
        self.model = model
        self.endpoint = endpoint or free_local_endpoint()
        self.extra = extra
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def output(self) -> Path:
        return self.home / "serve.out"

    def start(self) -> "DaemonProcess":
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DRAGEDIT_HOME": str(self.home)}
        env.setdefault("OMP_NUM_THREADS", "1")
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dragedit", "serve", "--endpoint", self.endpoint, "--model", self.model,
                 *self.extra], env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def wait_ready(self, timeout_s: float = 300.0) -> dict:
        """Wait until the daemon's engine is ready; returns its welcome (raises if it died or failed)."""
        client = DaemonClient(self.endpoint, client="dragedit-bench", client_version="0", data_folder=self.home,
                              timeout_s=timeout_s)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                for message in client.poll(100):
                    if message["type"] == "welcome" and message["state"] == "ready":
                        return message
                    if message["type"] == "welcome" and message["state"] == "error":
                        raise RuntimeError(f"the daemon could not load its model: {message['error']['message']}")
                if self.process.poll() is not None:
                    raise RuntimeError(f"the daemon exited with status {self.process.returncode}: {self.tail()}")
        finally:
            client.close()
        raise TimeoutError(f"the daemon was not ready after {timeout_s:.0f}s: {self.tail()}")

    def rss_bytes(self) -> int | None:
        """Resident memory of the daemon (Linux); None where /proc is not available."""
        return self._status_bytes("VmRSS")

    def peak_rss_bytes(self) -> int | None:
        """The daemon's largest resident memory since it started or since ``reset_peak_rss``."""
        return self._status_bytes("VmHWM")

    def reset_peak_rss(self) -> int | None:
        """Start measuring the peak resident memory from now (Linux); returns the resident memory now."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            return None
        return self.rss_bytes()

    def _status_bytes(self, field: str) -> int | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as in a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit status."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
