"""Prepares: images the daemon gets ready for a drag (RecLoRA, inversion) while the artist places points.

A prepare runs only when no drag waits, and stops at its next LoRA or inversion step when one
arrives (it is then run again after the drags; what it finished is in the engine's caches). One
prepare is kept per content (image, mask, model, prompt, method settings): an equal prepare from any
client subscribes to it, or is answered at once when it is done. A client's newer prepare for other
content supersedes its unfinished one; a prepare nobody waits for any more is dropped.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import msgpack


def image_key(message: dict[str, Any]) -> str:
    """The image and selection of a submit or prepare: what a worker's caches are for."""
    digest = hashlib.sha256(message["image"]["data"])
    if message.get("mask"):
        digest.update(message["mask"]["data"])
    return digest.hexdigest()[:32]


def prepare_key(message: dict[str, Any]) -> str:
    """What a prepare computes depends on: its image and selection and its settings, never its id."""
    settings = {name: message.get(name) for name in ("method", "params", "model", "vae", "prompt")}
    return hashlib.sha256(image_key(message).encode() + msgpack.packb(settings, use_bin_type=True)).hexdigest()[:32]


@dataclass(frozen=True)
class Subscriber:
    """A client connection waiting for a prepare, under the id it chose."""

    peer: bytes
    owner: str
    lane: str
    prepare_id: str

    @property
    def key(self) -> str:
        """Where its messages wait while its connection has not proven its key (a job's ``key`` too)."""
        return f"prepare-{self.prepare_id}"


@dataclass
class PrepareJob:
    """One prepare's content and who waits for it. ``cancel``: nobody does any more; ``preempt``: a
    drag is waiting, so stop at the next step and run again later."""

    key: str
    request: dict[str, Any]
    subscribers: list[Subscriber]
    cancel: threading.Event = field(default_factory=threading.Event)
    preempt: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"
    step: int = 0
    total: int = 0
    started: float | None = None

    @property
    def size(self) -> int:
        """Bytes of image data the prepare holds while it waits."""
        return sum(len(self.request[name]["data"]) for name in ("image", "mask") if self.request.get(name))

    def eta_s(self) -> float | None:
        if not self.started or not self.step or not self.total:
            return None
        return (time.monotonic() - self.started) / self.step * (self.total - self.step)


class PrepareQueue:
    """Waiting prepares in arrival order, the running one, and the recently finished ones by key."""

    def __init__(self, remembered: int) -> None:
        """``remembered``: finished prepares answered at once (the engine keeps about that many inversions)."""
        self.remembered = remembered
        self.waiting: OrderedDict[str, PrepareJob] = OrderedDict()
        self.running: PrepareJob | None = None
        self.done: OrderedDict[str, dict[str, bool]] = OrderedDict()  # key -> what was already cached

    def find(self, key: str) -> PrepareJob | None:
        """The prepare of this content that will still finish: a dropped one that has not stopped yet
        does not count (an equal prepare arriving now gets a new one, queued behind it)."""
        if self.running is not None and self.running.key == key and not self.running.cancel.is_set():
            return self.running
        return self.waiting.get(key)

    def add(self, job: PrepareJob) -> None:
        self.waiting[job.key] = job

    def put_back(self, job: PrepareJob) -> None:
        """A preempted prepare runs first among the prepares again."""
        job.state, job.preempt = "queued", threading.Event()
        self.waiting[job.key] = job
        self.waiting.move_to_end(job.key, last=False)

    def pop_next(self) -> PrepareJob | None:
        if not self.waiting:
            return None
        _, job = self.waiting.popitem(last=False)
        self.running, job.state, job.started = job, "running", time.monotonic()
        return job

    def finish(self, job: PrepareJob, cached: dict[str, bool] | None) -> None:
        """The running prepare ended; ``cached`` when it succeeded."""
        self.running = None
        if cached is not None:
            self.done[job.key] = cached
            self.done.move_to_end(job.key)
            while len(self.done) > self.remembered:
                self.done.popitem(last=False)

    def of_lane(self, lane: str) -> list[PrepareJob]:
        """Unfinished prepares a connection of this lane waits for."""
        jobs = [*self.waiting.values(), *([self.running] if self.running else [])]
        return [job for job in jobs if any(s.lane == lane for s in job.subscribers)]

    def drop(self, job: PrepareJob) -> None:
        """Nobody waits for ``job`` any more: forget it if waiting, stop it if running."""
        self.waiting.pop(job.key, None)
        job.cancel.set()

    def size(self) -> int:
        return sum(job.size for job in self.waiting.values())

    def summary(self) -> dict[str, Any]:
        return {"waiting": len(self.waiting), "running": self.running is not None, "done": len(self.done)}
