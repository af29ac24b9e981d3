"""Faults with real processes and signals: the real ``dragedit serve`` with a tiny model is killed
with SIGKILL mid-job and restarted, a second ``serve`` is refused, SIGTERM shuts down cleanly,
and a full disk (a real, full tmpfs) does not stop the daemon."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon_support import FAST, SLOW, all_final, eventually, final, photo, pump, ready, submit
from dragedit.config import Paths
from dragedit.daemon import security
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
        security.ensure_local_keys(home)  # as a daemon that ran before the disk filled up
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


def test_an_outcome_the_full_disk_refused_is_fetched_from_memory(full_disk, start_daemon, connect):
    daemon = start_daemon(paths=full_disk)
    first = connect(daemon.bound_endpoint, data_folder=full_disk.root)
    ready(first)
    job_id = submit(first, params={"steps": 20, "step_s": 0.02})
    pump([first], lambda seen: any(m["type"] == "progress" for m in seen))
    first.close()  # the editor went away; the result cannot be written to the full disk
    eventually(lambda: not daemon._running)
    second = connect(daemon.bound_endpoint, data_folder=full_disk.root)
    ready(second)
    second.fetch(job_id)
    result = final(pump([second], all_final(job_id)), job_id)
    assert result["type"] == "result" and result["image"]["width"] == 16


def test_an_outcome_dropped_from_memory_is_reported_as_a_full_disk(full_disk):
    from dragedit.daemon.results import ResultStore
    from dragedit_protocol import messages

    store = ResultStore(full_disk.results, full_disk.jobs, memory_bytes=300_000)
    outcome = messages.result("j", bytes(200_000), 250, 200, [(1.0, 1.0)], {}, 1, {})
    assert store.put("a-j1", "me", {**outcome, "job_id": "j1"}) is False  # the disk refused it: kept in memory
    assert store.get("a-j1")["message"]["job_id"] == "j1" and not store.lost("a-j1")
    assert store.put("a-j2", "me", {**outcome, "job_id": "j2"}) is False  # over the budget: the oldest goes
    assert store.get("a-j1") is None and store.lost("a-j1") and store.get("a-j2") is not None


def test_a_daemon_whose_stderr_is_on_a_full_disk_loads_its_model(tiny_model_dir, tmp_path):
    """/dev/full answers every write with ENOSPC, like a log file on a full disk."""
    from dragedit_protocol.client import DaemonClient

    home = tmp_path / "home"
    endpoint = free_local_endpoint()
    with open("/dev/full", "wb") as full:
        process = subprocess.Popen([sys.executable, "-m", "dragedit", "serve", "--endpoint", endpoint, "--model",
                                    str(tiny_model_dir), *SERVE_OPTIONS], env={**os.environ, "DRAGEDIT_HOME": str(home)},
                                   stdout=full, stderr=full, stdin=subprocess.DEVNULL)
    client = DaemonClient(endpoint, client="tests", client_version="0", data_folder=home, timeout_s=300)
    try:
        pump([client], lambda _: client.state == "ready" and client.welcome["state"] in ("ready", "error"), 300)
        assert client.welcome["state"] == "ready", client.welcome["error"]
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
