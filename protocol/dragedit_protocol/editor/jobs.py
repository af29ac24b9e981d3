"""The state of one drag job as the daemon's messages move it along, and its status line."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .errors import error_text

PHASE_TITLES = {
    "load": "Loading the model",
    "lora": "Fine-tuning on the image",
    "inversion": "Inverting the image",
    "drag": "Dragging",
    "denoise": "Denoising",
}

# The phases of a drag in the order they run, and their rough share of a first drag's time on a
# GPU or a CPU (the LoRA and the drag dominate): one progress bar runs through them all.
PHASE_SHARES = {"lora": 0.35, "inversion": 0.15, "drag": 0.35, "denoise": 0.15}
PHASE_ORDER = tuple(PHASE_SHARES)
MIN_FRACTION_FOR_ETA = 0.03  # progress needed before the whole job's time left is more than a guess

# waiting: not sent yet (daemon starting); submitted: sent, nothing heard back yet
ACTIVE = ("waiting", "submitted", "queued", "running", "cancelling")
FINISHED = ("done", "failed", "cancelled")


def format_eta(seconds: float | None) -> str:
    """'about 45 s', 'about 2 min 5 s', 'about 1 h 4 min'; '' when unknown."""
    if seconds is None or seconds < 0:
        return ""
    s = round(seconds)
    if s < 60:
        return f"about {max(s, 1)} s"
    if s < 3600:
        return f"about {s // 60} min {s % 60} s" if s % 60 else f"about {s // 60} min"
    return f"about {s // 3600} h {s % 3600 // 60} min"


@dataclass
class Preview:
    """A small RGB preview of the edit and the handles' current positions (in the sent image's pixels)."""

    width: int
    height: int
    rgb: bytes
    handles: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class JobState:
    """One drag job, updated by ``apply`` from the daemon's messages for its job id."""

    job_id: str
    status: str = "waiting"
    position: int | None = None
    phase: str = ""
    step: int = 0
    total: int = 0
    eta_s: float | None = None
    cached: bool = False
    preview: Preview | None = None
    handles: list[tuple[float, float]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str = ""
    started_at: float | None = None  # monotonic clock when the first work (not a cache hit) was reported
    started_fraction: float = 0.0     # the whole job's progress then


    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def phase_fraction(self) -> float:
        """Progress of the current phase, 0 .. 1."""
        return min(1.0, self.step / self.total) if self.total > 0 else 0.0

    @property
    def fraction(self) -> float:
        """Progress of the whole job, 0 .. 1, through every phase (one bar, never restarting)."""
        if self.status == "done":
            return 1.0
        if self.phase not in PHASE_SHARES:
            return 0.0
        index = PHASE_ORDER.index(self.phase)
        done = sum(PHASE_SHARES[p] for p in PHASE_ORDER[:index])
        return min(1.0, done + PHASE_SHARES[self.phase] * self.phase_fraction)

    def time_left_s(self, now: float | None = None) -> float | None:
        """The whole job's time left, from its progress so far (None until there is enough to tell).

        In the last phase the daemon's own estimate for it is the best there is.
        """
        if self.phase == PHASE_ORDER[-1] and self.eta_s is not None:
            return self.eta_s
        fraction = self.fraction
        progress = fraction - self.started_fraction
        if self.started_at is None or progress < MIN_FRACTION_FOR_ETA:
            return None
        elapsed = (time.monotonic() if now is None else now) - self.started_at
        return elapsed * (1 - fraction) / progress

    def apply(self, message: dict[str, Any], now: float | None = None) -> bool:
        """Take in a daemon message; returns whether it concerned this job and changed it.

        ``now``: the monotonic clock (default: read it), for the time left.
        """
        if message.get("job_id") != self.job_id or self.finished:
            return False
        kind = message.get("type")
        if kind == "queued":
            self.status = "queued" if self.status != "cancelling" else self.status
            self.position = message.get("position")
        elif kind == "progress":
            if self.status != "cancelling":
                self.status = "running"
            self.position = None
            self.phase = message.get("phase", "")
            self.step = int(message.get("step", 0))
            self.total = int(message.get("total", 0))
            self.eta_s = message.get("eta_s")
            self.cached = bool(message.get("cached", False))
            if self.started_at is None and not self.cached:
                self.started_at = time.monotonic() if now is None else now
                self.started_fraction = self.fraction
            self.handles = [tuple(h) for h in message.get("handles") or ()]
            preview = message.get("preview")
            if preview:
                self.preview = Preview(preview["width"], preview["height"], bytes(preview["data"]), list(self.handles))
        elif kind == "result":
            self.status = "done"
            self.result = message
            self.handles = [tuple(h) for h in message.get("handles") or ()]
        elif kind == "error":
            self.status = "failed"
            self.error = error_text(message.get("code", ""), message.get("message", ""), message.get("hint", ""))
        elif kind == "cancelled":
            self.status = "cancelled"
        else:
            return False
        return True

    def fail(self, text: str) -> None:
        """Mark the job failed on the plug-in's side (daemon gone, bad result...)."""
        self.status = "failed"
        self.error = text

    def result_summary(self) -> str:
        """How long the daemon took, and whether the fine-tuning and inversion were ready ahead
        (prepared, or kept from an earlier drag of the same area): 'It took 7 s; ...'."""
        if self.result is None:
            return ""
        seconds = sum(value for phase, value in (self.result.get("timings") or {}).items() if phase != "total")
        hits = self.result.get("cache_hits") or {}
        ready = [name for phase, name in (("lora", "fine-tuning"), ("inversion", "inversion")) if hits.get(phase)]
        if len(ready) == 2:
            ahead = " (fine-tuning and inversion were ready ahead)"
        else:
            ahead = f" (the {ready[0]} was ready ahead)" if ready else ""
        return f"It took {max(round(seconds), 1)} s{ahead}."

    def status_text(self, now: float | None = None) -> str:
        """One line for the editor's status area: the phase, its steps, the whole job's time left."""
        if self.status == "waiting":
            return "Waiting for the daemon to start (it loads the model first)..."
        if self.status == "submitted":
            return "Sent to the daemon, waiting for its answer..."
        if self.status == "queued":
            # the daemon counts places in line from 1 (= runs next); 0 = starting now
            if not self.position:
                return "Starting (the daemon loads the model if it is not loaded yet)..."
            ahead = self.position - 1
            return (f"Queued behind {ahead} other drag{'s' if ahead > 1 else ''}" if ahead
                    else "Queued: runs next")
        if self.status in ("running", "cancelling"):
            title = PHASE_TITLES.get(self.phase, self.phase.capitalize() or "Working")
            parts = [title]
            if self.total:
                parts.append(f"{self.step}/{self.total}")
            if self.cached:
                parts.append("(cached)")
            eta = format_eta(self.time_left_s(now))
            text = " ".join(parts) + (f", {eta} left" if eta else "")
            return "Cancelling... " + text if self.status == "cancelling" else text
        if self.status == "done":
            return "Done. " + self.result_summary()
        if self.status == "cancelled":
            return "Cancelled."
        return self.error or "The drag failed."
