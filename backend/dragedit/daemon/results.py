"""Finished jobs on disk, kept until fetched or expired, and markers of unfinished jobs.

Jobs are named by their key (``jobs.job_key``: the owner's key and the client's job id), so the
ids of different clients never meet. Every file is msgpack (never pickle), written to a
temporary name, flushed and renamed, so a crash leaves either the old state or the new one. A
file that cannot be read back (cut short by a full disk, edited by hand) is deleted and counts
as missing. An outcome that cannot be written (a full disk) is kept in memory, up to
``memory_bytes``, and written when the disk has room again; beyond that budget the oldest is
dropped and remembered as lost, so a later fetch says the disk was full.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import msgpack

from dragedit_protocol import messages

log = logging.getLogger(__name__)

RESULT_SUFFIX = ".result"
PENDING_SUFFIX = ".pending"
TMP_SUFFIX = ".tmp"


def write_atomic(path: Path, payload: dict[str, Any], durable: bool = False) -> None:
    """Write a msgpack map to ``path`` so that readers never see a partial file. The rename alone
    survives a killed process; ``durable`` also flushes to the disk (for power loss), which can take
    seconds on a busy disk, so the I/O thread never asks for it."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{time.monotonic_ns()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(msgpack.packb(payload, use_bin_type=True))
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_map(path: Path, max_bytes: int = messages.MAX_MESSAGE_BYTES) -> dict[str, Any] | None:
    """Read a msgpack map written by ``write_atomic``; None (and the file deleted) if it is damaged."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ValueError(f"{size} bytes")
        data = path.read_bytes()
        value = msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_no_ext,
                                max_bin_len=max_bytes, max_str_len=1 << 20)
        if not isinstance(value, dict):
            raise ValueError("not a map")
        return value
    except FileNotFoundError:
        return None
    except Exception as exc:  # damaged file: report it, remove it, carry on
        log.warning("removing unreadable file %s (%s)", path, exc)
        path.unlink(missing_ok=True)
        return None


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError("extension types are not used in DragEdit files")


def _byte_fields(value: Any):
    """Every bytes value inside a message (its images), to size what it costs in memory."""
    if isinstance(value, (bytes, bytearray)):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _byte_fields(item)


class ResultStore:
    """Terminal messages (result, error, cancelled) by job key, plus markers of accepted jobs.
    Safe to use from the I/O thread and the worker thread."""

    def __init__(self, results: Path, jobs: Path, ttl_s: float = 24 * 3600, max_bytes: int = 4 * 1024**3,
                 memory_bytes: int = 512 * 1024**2, max_lost: int = 10_000):
        self.results = results
        self.jobs = jobs
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.memory_bytes = memory_bytes
        self.max_lost = max_lost
        self._lock = threading.Lock()
        self._unsaved: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()  # key -> (bytes, record)
        self._lost: OrderedDict[str, None] = OrderedDict()  # keys whose outcome the full disk cost
        results.mkdir(parents=True, exist_ok=True)
        jobs.mkdir(parents=True, exist_ok=True)

    # -- finished jobs

    def put(self, key: str, owner: str, message: dict[str, Any], durable: bool = False) -> bool:
        """Store a job's final message; False when the disk refused it (it is then kept in memory)."""
        record = {"key": key, "owner": owner, "finished": time.time(), "message": message}
        try:
            write_atomic(self.results / f"{key}{RESULT_SUFFIX}", record, durable)
            return True
        except OSError as exc:
            log.error("could not write the outcome of job %s to disk (%s); it is kept in memory until fetched "
                      "or until the disk has room", key, exc)
            self._keep_in_memory(key, record)
            return False

    def _keep_in_memory(self, key: str, record: dict[str, Any]) -> None:
        size = sum(len(v) for v in _byte_fields(record["message"])) + 1024
        with self._lock:
            self._unsaved[key] = (size, record)
            while sum(n for n, _ in self._unsaved.values()) > self.memory_bytes and len(self._unsaved) > 1:
                dropped, _ = self._unsaved.popitem(last=False)
                log.error("dropped the outcome of job %s: the disk is full and the memory budget for unsaved "
                          "outcomes (%d MB) is used", dropped, self.memory_bytes // 2**20)
                self._lost[dropped] = None
                while len(self._lost) > self.max_lost:
                    self._lost.popitem(last=False)

    def save_unsaved(self) -> int:
        """Write the outcomes kept in memory to disk while it has room; returns how many are left."""
        with self._lock:
            pending = list(self._unsaved.items())
        for key, (_, record) in pending:
            try:
                write_atomic(self.results / f"{key}{RESULT_SUFFIX}", record)
            except OSError:
                break
            with self._lock:
                self._unsaved.pop(key, None)
        with self._lock:
            return len(self._unsaved)

    def lost(self, key: str) -> bool:
        """Whether this job finished but its outcome was dropped because the disk was full."""
        with self._lock:
            return key in self._lost

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored record {key, owner, finished, message}, or None."""
        with self._lock:
            if key in self._unsaved:
                return self._unsaved[key][1]
        record = read_map(self.results / f"{key}{RESULT_SUFFIX}")
        if record is None or not isinstance(record.get("message"), dict) or record.get("key") != key:
            return None
        return record

    def has(self, key: str) -> bool:
        with self._lock:
            if key in self._unsaved:
                return True
        return (self.results / f"{key}{RESULT_SUFFIX}").exists()

    def delete(self, key: str) -> None:
        with self._lock:
            self._unsaved.pop(key, None)
        (self.results / f"{key}{RESULT_SUFFIX}").unlink(missing_ok=True)

    def count(self) -> int:
        with self._lock:
            unsaved = len(self._unsaved)
        return unsaved + sum(1 for _ in self.results.glob(f"*{RESULT_SUFFIX}"))

    def expire(self) -> int:
        """Delete results older than the TTL, then the oldest until under the size budget."""
        now = time.time()
        entries = []
        removed = 0
        for path in self.results.glob(f"*{RESULT_SUFFIX}"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if now - stat.st_mtime > self.ttl_s:
                path.unlink(missing_ok=True)
                removed += 1
            else:
                entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed

    # -- unfinished jobs

    def mark_pending(self, key: str, job_id: str, owner: str) -> None:
        write_atomic(self.jobs / f"{key}{PENDING_SUFFIX}",
                     {"key": key, "job_id": job_id, "owner": owner, "submitted": time.time()})

    def clear_pending(self, key: str) -> None:
        (self.jobs / f"{key}{PENDING_SUFFIX}").unlink(missing_ok=True)

    def recover(self) -> list[str]:
        """At start-up: turn every job a previous daemon left unfinished into a stored error,
        and remove temporary files left by a crash. Returns the interrupted jobs' keys."""
        for folder in (self.results, self.jobs):
            for tmp in folder.glob(f"*{TMP_SUFFIX}"):
                tmp.unlink(missing_ok=True)
        interrupted = []
        for path in sorted(self.jobs.glob(f"*{PENDING_SUFFIX}")):
            marker = read_map(path)
            key = path.name[: -len(PENDING_SUFFIX)]
            if marker is not None and marker.get("key") == key and not self.has(key):
                owner = marker.get("owner") if isinstance(marker.get("owner"), str) else ""
                job_id = str(marker.get("job_id"))
                message = messages.error(
                    "daemon_restarted", f"The daemon stopped unexpectedly; job {job_id} was not finished.",
                    "Run the edit again.", job_id)
                self.put(key, owner, message)
                interrupted.append(key)
            path.unlink(missing_ok=True)
        return interrupted
