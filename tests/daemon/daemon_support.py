"""Helpers shared by the daemon tests: run a daemon, drive clients until a condition holds, build
test images."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import zmq

from dragedit.config import Paths
from dragedit.daemon import Daemon, DaemonOptions
from dragedit.engine.api import EngineSettings
from dragedit_protocol.client import DaemonClient
from dragedit_protocol.keys import local_client_keys

# the cheapest real-engine job (no LoRA, one inversion step, one drag step), and a long one to cancel or
# kill: its LoRA phase runs for minutes (the drag phase may end early, once the handles arrive)
FAST = {"lora_steps": 0, "drag_steps": 1, "inversion_strength": 0.02}
SLOW = {"lora_steps": 2000, "drag_steps": 1, "inversion_strength": 0.02}


@contextmanager
def engine_daemon_in_thread(model_dir: Path, home: Path, engine_factory: Callable) -> Iterator[Daemon]:
    """A daemon on a free loopback port whose engine (made by ``engine_factory``) runs the tiny model
    on the CPU at 64 px, in a thread; stopped afterwards, and its thread must have ended."""
    paths = Paths(home).make()
    settings = EngineSettings(model=str(model_dir), device="cpu", dtype="fp32", work_size=64,
                              cache_dir=str(paths.cache))
    daemon = Daemon(DaemonOptions(endpoint="tcp://127.0.0.1:*", settings=settings, paths=paths), engine_factory)
    thread = daemon.start_in_thread()
    try:
        yield daemon
    finally:
        daemon.stop()
        thread.join(timeout=60)
    assert not thread.is_alive()


def pump(clients: list[DaemonClient], until: Callable[[list[dict]], bool], timeout_s: float = 60.0) -> list[dict]:
    """Poll the clients, collecting (client index, message) until ``until(messages)`` holds."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for index, client in enumerate(clients):
            for message in client.poll(20):
                seen.append({**message, "_client": index})
        if until(seen):
            return seen
    raise AssertionError(f"timed out; got {[(m['_client'], m['type'], m.get('job_id'), m.get('code')) for m in seen]}")


def final(messages: list[dict], job_id: str) -> dict | None:
    """The result/error/cancelled message of a job, if it arrived."""
    for message in messages:
        if message.get("job_id") == job_id and message["type"] in ("result", "error", "cancelled"):
            return message
    return None


def all_final(*job_ids: str) -> Callable[[list[dict]], bool]:
    return lambda messages: all(final(messages, job_id) is not None for job_id in job_ids)


def ready(client: DaemonClient, timeout_s: float = 20.0, state: str = "ready") -> dict:
    """Wait until the client is welcomed (and the engine reports ``state``); returns the welcome."""
    pump([client], lambda _: client.state == "ready" and client.welcome["state"] == state, timeout_s)
    return client.welcome


def image(width: int = 16, height: int = 12) -> np.ndarray:
    """An RGBA test image with a gradient."""
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., 0] = np.arange(width, dtype=np.uint8)[None, :] * 8
    rgba[..., 1] = np.arange(height, dtype=np.uint8)[:, None] * 8
    rgba[..., 3] = 255
    return rgba


def submit(client: DaemonClient, rgba: np.ndarray | None = None, method: str = "double", **kwargs) -> str:
    rgba = image() if rgba is None else rgba
    kwargs.setdefault("points", [(2, 2, 6, 5)])
    return client.submit(method, rgba.tobytes(), rgba.shape[1], rgba.shape[0], **kwargs)


def eventually(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Wait until ``condition()`` holds (for effects the daemon applies after it has answered)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def photo(width: int = 32, height: int = 32, seed: int = 0) -> np.ndarray:
    """A random opaque RGBA image (for the real engine)."""
    rgba = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    return rgba


def raw_socket(endpoint: str, data_folder: Path, routing_id: bytes | None = None) -> zmq.Socket:
    """A bare DEALER socket with the local keys of ``data_folder`` (close it yourself)."""
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    if routing_id is not None:
        socket.setsockopt(zmq.ROUTING_ID, routing_id)
    local_client_keys(data_folder).apply(socket)
    socket.connect(endpoint)
    return socket


def local_job_key(home: Paths, job_id: str) -> str:
    """The daemon's key of a job submitted with the local keys of ``home``."""
    from dragedit.daemon.jobs import job_key

    return job_key(local_client_keys(home.root).client_public_key.decode("ascii"), job_id)
