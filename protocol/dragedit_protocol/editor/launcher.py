"""Find the daemon install.py set up for this plug-in and start ``dragedit serve`` when none answers.

install.py writes ``<plug-in>/_vendor/dragedit_install.json`` =
{"dragedit": path of the dragedit executable, "endpoint": ..., "version": ...}.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import UserError

INSTALL_FILE = "dragedit_install.json"
NOT_INSTALLED_HINT = "run 'python3 install.py' in the DragEdit folder, then restart the editor"


@dataclass(frozen=True)
class InstallInfo:
    """Where install.py put the daemon, and the endpoint it configured."""

    dragedit: str
    endpoint: str
    version: str = ""


def read_install_info(vendor_dir: Path) -> InstallInfo:
    """Read ``dragedit_install.json``; UserError saying what to do when it is missing or broken."""
    path = Path(vendor_dir) / INSTALL_FILE
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        info = InstallInfo(dragedit=str(d["dragedit"]), endpoint=str(d["endpoint"]), version=str(d.get("version", "")))
    except FileNotFoundError:
        raise UserError(f"DragEdit's daemon is not installed for this plug-in ({path} is missing)", NOT_INSTALLED_HINT)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"DragEdit's install record {path} cannot be read ({exc})", NOT_INSTALLED_HINT)
    return info


def is_local_endpoint(endpoint: str) -> bool:
    """Whether a daemon at this endpoint would run on this machine (so the plug-in may start it)."""
    return endpoint.startswith(("tcp://127.0.0.1:", "tcp://localhost:", "tcp://[::1]:", "ipc://"))


def default_log_path() -> Path:
    return Path(tempfile.gettempdir()) / f"dragedit-serve-{os.getuid() if hasattr(os, 'getuid') else 'user'}.log"


class DaemonLauncher:
    """Starts ``dragedit serve --endpoint E`` detached from the editor, at most once per ``start`` call.

    A second daemon for the same user exits by itself, so starting one when another is still
    coming up is harmless.
    """

    def __init__(self, info: InstallInfo, endpoint: str, log_path: Path | None = None,
                 popen: Callable[..., subprocess.Popen] = subprocess.Popen):
        self.info = info
        self.endpoint = endpoint
        self.log_path = log_path or default_log_path()
        self._popen = popen
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [self.info.dragedit, "serve", "--endpoint", self.endpoint]

    def start(self) -> None:
        """Start the daemon; UserError when the executable is missing or cannot run."""
        exe = Path(self.info.dragedit)
        if not exe.is_file():
            raise UserError(f"The DragEdit daemon {exe} does not exist", NOT_INSTALLED_HINT)
        # The editor's own Python settings must not leak into the daemon's virtual environment.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
        detach: dict = {"start_new_session": True}
        if sys.platform == "win32":
            detach = {"creationflags": subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP}
        try:
            with open(self.log_path, "ab") as log:
                self.process = self._popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                           env=env, close_fds=True, **detach)
        except OSError as exc:
            raise UserError(f"The DragEdit daemon could not be started: {exc}", NOT_INSTALLED_HINT)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the daemon this launcher started (SIGTERM, then SIGKILL); nothing if it started none."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout_s)

    def exited_with(self) -> int | None:
        """The exit status if the started daemon already stopped, else None."""
        return None if self.process is None else self.process.poll()

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " ".join(line.strip() for line in text.strip().splitlines()[-lines:])
