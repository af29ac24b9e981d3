"""Finished jobs on disk, kept until fetched or expired, and markers of unfinished jobs.

Every file is msgpack (never pickle), written to a temporary name, flushed and renamed, so
a crash leaves either the old state or the new one. A file that cannot be read back (cut
short by a full disk, edited by hand) is deleted and counts as missing.
"""
from __future__ import annotations

import logging
import os
import time
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


class ResultStore:
    """Terminal messages (result, error, cancelled) by job id, plus markers of accepted jobs."""

    def __init__(self, results: Path, jobs: Path, ttl_s: float = 24 * 3600, max_bytes: int = 4 * 1024**3):
        self.results = results
        self.jobs = jobs
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        results.mkdir(parents=True, exist_ok=True)
        jobs.mkdir(parents=True, exist_ok=True)

    # -- finished jobs

    def put(self, job_id: str, owner: str, message: dict[str, Any], durable: bool = False) -> None:
        """Store a job's final message (raises OSError, e.g. on a full disk)."""
        write_atomic(self.results / f"{job_id}{RESULT_SUFFIX}",
                     {"job_id": job_id, "owner": owner, "finished": time.time(), "message": message}, durable)

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The stored record {job_id, owner, finished, message}, or None."""
        record = read_map(self.results / f"{job_id}{RESULT_SUFFIX}")
        if record is None or not isinstance(record.get("message"), dict) or record.get("job_id") != job_id:
            return None
        return record

    def has(self, job_id: str) -> bool:
        return (self.results / f"{job_id}{RESULT_SUFFIX}").exists()

    def delete(self, job_id: str) -> None:
        (self.results / f"{job_id}{RESULT_SUFFIX}").unlink(missing_ok=True)

    def count(self) -> int:
        return sum(1 for _ in self.results.glob(f"*{RESULT_SUFFIX}"))

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

    def mark_pending(self, job_id: str, owner: str) -> None:
        write_atomic(self.jobs / f"{job_id}{PENDING_SUFFIX}", {"job_id": job_id, "owner": owner, "submitted": time.time()})

    def clear_pending(self, job_id: str) -> None:
        (self.jobs / f"{job_id}{PENDING_SUFFIX}").unlink(missing_ok=True)

    def recover(self) -> list[str]:
        """At start-up: turn every job a previous daemon left unfinished into a stored error,
        and remove temporary files left by a crash. Returns the interrupted job ids."""
        for folder in (self.results, self.jobs):
            for tmp in folder.glob(f"*{TMP_SUFFIX}"):
                tmp.unlink(missing_ok=True)
        interrupted = []
        for path in sorted(self.jobs.glob(f"*{PENDING_SUFFIX}")):
            marker = read_map(path)
            job_id = path.name[: -len(PENDING_SUFFIX)]
            if marker is not None and marker.get("job_id") == job_id and not self.has(job_id):
                owner = marker.get("owner") if isinstance(marker.get("owner"), str) else ""
                message = messages.error(
                    "daemon_restarted", f"The daemon stopped unexpectedly; job {job_id} was not finished.",
                    "Run the edit again.", job_id)
                try:
                    self.put(job_id, owner, message)
                    interrupted.append(job_id)
                except OSError as exc:
                    log.warning("cannot record interrupted job %s: %s", job_id, exc)
            path.unlink(missing_ok=True)
        return interrupted
