"""Faults with real processes and signals: the real ``dragedit serve`` with a tiny model is killed
with SIGKILL mid-job and restarted, a second ``serve`` is refused, SIGTERM shuts down cleanly,
and a full disk (a real, full tmpfs) does not stop the daemon."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon_support import FAST, SLOW, all_final, final, photo, pump, ready, submit
from dragedit.config import Paths
from dragedit.daemon.process import DaemonProcess, free_local_endpoint
from dragedit.daemon.results import read_map

SERVE_OPTIONS = ("--device", "cpu", "--dtype", "fp32", "--work-size", "64")


def refused_serve(home: Path, endpoint: str) -> str:
    """Run a ``dragedit serve`` that must fail; returns what it said."""
    run = subprocess.run([sys.executable, "-m", "dragedit", "serve", "--endpoint", endpoint, "--model", "unused"],
                         env={**os.environ, "DRAGEDIT_HOME": str(home)}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    return run.stderr


@pytest.fixture
def daemons():
    """Start DaemonProcess objects through this list; whatever is still running is killed at the end."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        if daemon.alive():
            daemon.kill()


def test_sigkill_mid_job_then_restart_serves_at_once_and_reports_the_lost_job(tiny_model_dir, tmp_path, connect,
                                                                           daemons):
    home = tmp_path / "home"
    endpoint = free_local_endpoint()
    first = DaemonProcess(home, str(tiny_model_dir), endpoint, SERVE_OPTIONS).start()
    daemons.append(first)
    client = connect(endpoint, timeout_s=5.0, heartbeat_interval_s=0.2, data_folder=home)
    ready(client, timeout_s=300)
    old_instance = client.welcome["instance"]
    doomed = submit(client, photo(), method="dragdiffusion", params=SLOW)
    pump([client], lambda seen: any(m["type"] == "progress" and m["phase"] == "lora" for m in seen), timeout_s=300)

    # a second daemon for the same user is refused with a clear message
    second = refused_serve(home, endpoint)
    assert "already running" in second and str(first.pid) in second

    first.kill()
    restarted = DaemonProcess(home, str(tiny_model_dir), endpoint, SERVE_OPTIONS).start()
    daemons.append(restarted)
    seen = pump([client], all_final(doomed), timeout_s=300)  # the same client object, reconnecting by itself
    error = final(seen, doomed)
    assert error["type"] == "error" and error["code"] == "daemon_restarted" and doomed in error["message"]
    assert client.welcome["instance"] != old_instance

    job_id = submit(client, photo(), method="dragdiffusion", params=FAST)
    assert final(pump([client], all_final(job_id), timeout_s=300), job_id)["type"] == "result"

    paths = Paths(home)
    leftovers = [p.name for p in (*paths.results.iterdir(), *paths.jobs.iterdir()) if p.name.endswith(".tmp")]
    assert leftovers == [] and list(paths.jobs.iterdir()) == []
    for stored in paths.results.iterdir():
        assert read_map(stored) is not None, f"{stored} is damaged"

    assert restarted.stop() == 0, restarted.tail()  # SIGTERM: a clean exit
    log = paths.log_file.read_text()
    assert "cut short by the previous daemon" in log and log.rstrip().endswith("stopped")
    assert paths.lock.read_text() == ""  # released


@pytest.fixture
def full_disk(tmp_path):
    """A 2 MB tmpfs filled to the last byte (needs root to mount, as on the CI machine)."""
    mount_point = tmp_path / "full"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        home = Paths(mount_point / "home").make()
        with open(mount_point / "filler", "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
        yield home
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_does_not_stop_the_daemon(tiny_model_dir, full_disk, start_daemon, connect):
    from dragedit.cli import create_engine
    from dragedit.engine.api import EngineSettings

    settings = EngineSettings(model=str(tiny_model_dir), device="cpu", dtype="fp32", work_size=64,
                              cache_dir=str(full_disk.cache))
    daemon = start_daemon(create_engine, paths=full_disk, settings=settings)
    client = connect(daemon.bound_endpoint, timeout_s=30.0, data_folder=daemon.options.paths.root)
    ready(client, timeout_s=120)
    with_cache = submit(client, photo(), method="dragdiffusion", params={**FAST, "lora_steps": 1})
    plain = submit(client, photo(seed=3), method="dragdiffusion", params=FAST)
    seen = pump([client], all_final(with_cache, plain), timeout_s=300)
    cached = final(seen, with_cache)  # its LoRA could not be cached: a result, or an error that says why
    assert cached["type"] == "result" or (cached["code"] == "disk_full" and "free space" in cached["hint"]), cached
    assert final(seen, plain)["type"] == "result"  # its result file could not be written: delivered anyway
    client.request_status()
    assert pump([client], lambda seen: any(m["type"] == "status" for m in seen))[-1]["state"] == "ready"
    assert not [p for p in full_disk.results.iterdir() if p.name.endswith(".tmp")]
