"""Where DragEdit keeps its files: $DRAGEDIT_HOME, else $XDG_DATA_HOME/dragedit.

Layout of the user data folder::

    daemon.lock        held by the running daemon (pid and endpoint inside)
    logs/daemon.log    rotating log
    results/           finished jobs kept until fetched or expired (msgpack, atomic writes)
    jobs/              one marker per accepted, unfinished job (to report jobs cut by a crash)
    keys/              CurveZMQ keys: server.key, server.key_secret, local-client.key_secret, authorized/*.key
    cache/             the engine's caches
"""
from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from dragedit_protocol.keys import KEYS_FOLDER, data_dir

log = logging.getLogger(__name__)


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
        return self.root / KEYS_FOLDER

    @property
    def authorized_keys(self) -> Path:
        return self.keys / "authorized"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def make(self) -> "Paths":
        """Create the folders private to the user (mode 700, tightened when they exist and others could
        read them) and return self."""
        for folder in (self.root, self.logs, self.results, self.jobs, self.keys, self.authorized_keys, self.cache):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            make_private(folder)
        return self


def make_private(folder: Path) -> None:
    """Mode 700 for a folder of ours that others could read or enter; a warning when it cannot be."""
    info = folder.stat()
    if os.name == "nt" or not info.st_mode & 0o077:
        return
    try:
        os.chmod(folder, stat.S_IMODE(info.st_mode) & 0o700)
        log.warning("made %s private to its owner (it was mode %o)", folder, stat.S_IMODE(info.st_mode))
    except OSError as exc:
        log.warning("%s can be read by other users (mode %o) and cannot be made private: %s; keep DragEdit's data "
                    "folder in a place only you can read (DRAGEDIT_HOME)", folder, stat.S_IMODE(info.st_mode), exc)
