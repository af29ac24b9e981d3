"""Where DragEdit keeps its files: $DRAGEDIT_HOME, else $XDG_DATA_HOME/dragedit.

Layout of the user data folder::

    daemon.lock        held by the running daemon (pid and endpoint inside)
    logs/daemon.log    rotating log
    results/           finished jobs kept until fetched or expired (msgpack, atomic writes)
    jobs/              one marker per accepted, unfinished job (to report jobs cut by a crash)
    keys/              CurveZMQ keys: server.key, server.key_secret, authorized/*.key
    cache/             the engine's caches
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


def data_dir() -> Path:
    """The user data folder (not created)."""
    explicit = os.environ.get("DRAGEDIT_HOME")
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "dragedit"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "dragedit"


@dataclass(frozen=True)
class Paths:
    """The folders and files inside one user data folder."""

    root: Path

    @classmethod
    def default(cls) -> "Paths":
        return cls(data_dir())

    @property
    def lock(self) -> Path:
        return self.root / "daemon.lock"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs / "daemon.log"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def authorized_keys(self) -> Path:
        return self.keys / "authorized"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def make(self) -> "Paths":
        """Create the folders (private to the user) and return self."""
        for folder in (self.root, self.logs, self.results, self.jobs, self.keys, self.authorized_keys, self.cache):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self
