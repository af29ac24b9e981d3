"""One daemon per user data folder: an OS file lock that dies with the process (even on SIGKILL)."""
from __future__ import annotations

import json
import os
from pathlib import Path

if os.name == "nt":
    import msvcrt
else:
    import fcntl


class AlreadyRunning(Exception):
    """Another daemon holds the lock; ``info`` is what it wrote (pid, endpoint)."""

    def __init__(self, info: dict):
        super().__init__(f"another DragEdit daemon is running: {info}")
        self.info = info


class InstanceLock:
    """An exclusive lock on ``path``; the holder writes its pid and endpoint into the file."""

    def __init__(self, path: Path):
        self.path = path
        self._handle = None

    def acquire(self, info: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            _lock(handle)
        except OSError:
            handle.seek(0)
            text = handle.read()
            handle.close()
            try:
                held_by = json.loads(text)
            except ValueError:
                held_by = {}
            raise AlreadyRunning(held_by if isinstance(held_by, dict) else {})
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(info))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is None:
            return
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.flush()
        _unlock(self._handle)
        self._handle.close()
        self._handle = None


def _lock(handle) -> None:
    if os.name == "nt":
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(handle) -> None:
    if os.name == "nt":
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
