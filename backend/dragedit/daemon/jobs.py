"""Jobs and the fair queue that orders them.

Policy: one job runs at a time. Each client's jobs run in the order it sent them; between
clients the queue takes turns (start-time fair queueing): a new job is stamped one turn after
the later of its client's previous job and the job running now, and the smallest stamp runs
next (ties: arrival order). A client that floods the queue only delays its own jobs: any
other client's job waits behind at most one job of each client with work queued.
"""
from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any


def job_key(owner: str, job_id: str) -> str:
    """The daemon's name for a job: the client's id within its owner's key, so that clients with
    different keys never see (or collide with) each other's job ids. Safe as a file name."""
    return f"{hashlib.sha256(owner.encode()).hexdigest()[:16]}-{job_id}"


@dataclass
class Job:
    """An accepted submit. ``peer`` is where its messages go (a reconnecting fetch moves it), and
    ``watchers`` are other connections of its owner that asked to cancel it and get its final
    message too; ``owner`` is the authenticated client key; ``lane`` is what fairness counts."""

    job_id: str
    peer: bytes
    owner: str
    lane: str
    request: dict[str, Any]  # the validated submit message
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    watchers: set[bytes] = field(default_factory=set)
    seq: int = 0
    turn: int = 0

    @property
    def key(self) -> str:
        return job_key(self.owner, self.job_id)

    @property
    def size(self) -> int:
        """Bytes of image data the job holds while it waits."""
        return sum(len(self.request[name]["data"]) for name in ("image", "mask") if self.request.get(name))


class FairQueue:
    """Waiting jobs by key, ordered by (turn, arrival)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lane_turn: dict[str, int] = {}
        self._now_turn = 0
        self._seq = 0

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, key: object) -> bool:
        return key in self._jobs

    def get(self, key: str) -> Job | None:
        return self._jobs.get(key)

    def count(self, lane: str) -> int:
        return sum(1 for job in self._jobs.values() if job.lane == lane)

    def size(self) -> int:
        """Bytes of image data waiting."""
        return sum(job.size for job in self._jobs.values())

    def add(self, job: Job) -> None:
        self._seq += 1
        job.seq = self._seq
        job.turn = max(self._lane_turn.get(job.lane, 0), self._now_turn) + 1
        self._lane_turn[job.lane] = job.turn
        self._jobs[job.key] = job

    def remove(self, key: str) -> Job | None:
        return self._jobs.pop(key, None)

    def pop_next(self) -> Job | None:
        """Take the job that runs next; its turn becomes the current turn."""
        ordered = self.ordered()
        if not ordered:
            return None
        job = ordered[0]
        del self._jobs[job.key]
        self._now_turn = job.turn
        self._forget_idle_lanes()
        return job

    def ordered(self) -> list[Job]:
        """Waiting jobs in the order they will run."""
        return sorted(self._jobs.values(), key=lambda job: (job.turn, job.seq))

    def positions(self) -> dict[str, int]:
        """job key -> place in line (1 = runs next)."""
        return {job.key: place for place, job in enumerate(self.ordered(), start=1)}

    def _forget_idle_lanes(self) -> None:
        busy = {job.lane for job in self._jobs.values()}
        for lane in list(self._lane_turn):
            if lane not in busy:
                del self._lane_turn[lane]
