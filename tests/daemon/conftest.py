"""Daemons run in-process (a thread, real ZeroMQ sockets on loopback) and clients to talk to them."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from dragedit.config import Paths
from dragedit.daemon import Daemon, DaemonOptions
from dragedit.engine.api import EngineSettings
from dragedit_protocol.client import DaemonClient
from engine_double import EngineDouble


@pytest.fixture
def home(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "home").make()


@pytest.fixture
def start_daemon(home: Paths):
    """start_daemon(engine_factory=None, **DaemonOptions fields) -> a running Daemon (stopped at teardown)."""
    running: list[tuple[Daemon, object]] = []

    def start(engine_factory: Callable | None = None, **options) -> Daemon:
        options.setdefault("endpoint", "tcp://127.0.0.1:*")
        options.setdefault("paths", home)
        options.setdefault("settings", EngineSettings(model="double-model", device="cpu"))
        options.setdefault("heartbeat_timeout_s", 3.0)
        daemon = Daemon(DaemonOptions(**options), engine_factory or EngineDouble)
        thread = daemon.start_in_thread()
        running.append((daemon, thread))
        return daemon

    yield start
    for daemon, thread in running:
        daemon.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the daemon did not shut down"


@pytest.fixture
def connect(home: Paths):
    """connect(endpoint, **DaemonClient options) -> a client that is closed at teardown; by default it
    uses the local keys of the ``home`` data folder (pass data_folder= for another daemon's)."""
    clients: list[DaemonClient] = []

    def make(endpoint: str, **options) -> DaemonClient:
        options.setdefault("data_folder", home.root)
        options.setdefault("client", "tests")
        options.setdefault("client_version", "0")
        options.setdefault("heartbeat_interval_s", 0.2)
        options.setdefault("timeout_s", 3.0)
        client = DaemonClient(endpoint, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
