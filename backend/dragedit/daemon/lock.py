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
    """An exclusive lock on ``path``; the holder writes its pid and endpoint into the file
    (unbuffered, and only as a note: on a full disk the lock holds without it)."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self, info: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(fd)
        except OSError:
            held_by = _read_note(fd)
            os.close(fd)
            raise AlreadyRunning(held_by)
        self._fd = fd
        _write_note(fd, json.dumps(info).encode())

    def release(self) -> None:
        if self._fd is None:
            return
        _write_note(self._fd, b"")
        _unlock(self._fd)
        os.close(self._fd)
        self._fd = None


def _read_note(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        note = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        return {}
    return note if isinstance(note, dict) else {}


def _write_note(fd: int, data: bytes) -> None:
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)
    except OSError:
        pass


def _lock(fd: int) -> None:
    if os.name == "nt":
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(fd: int) -> None:
    if os.name == "nt":
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
