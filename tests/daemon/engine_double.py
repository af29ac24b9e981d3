"""A small stand-in for dragedit.engine.Engine with the same interface, for the queue, cancel
and heartbeat tests (the end-to-end tests use the real Engine with a tiny model).

It inverts the RGB of the image, moves each handle onto its target, and reports ``steps``
progress events ``step_s`` apart; a prepare counts ``steps`` the same way (the defaults without a method). Its ``fault`` parameter injects failures."""
from __future__ import annotations

import threading
import time

import numpy as np

from dragedit.engine.api import (DragRequest, DragResult, EditError, EngineSettings, JobCancelled, PrepareRequest,
                                PrepareResult, Progress)
from dragedit.methods.base import MethodSpec, Param

SPEC = MethodSpec("double", "Double", "Inverts the image slowly.", (
    Param("steps", "int", 3, "progress events", min=1, max=1000),
    Param("step_s", "float", 0.01, "seconds per step", min=0.0, max=10.0),
    Param("fault", "choice", "none", "failure to inject", choices=("none", "oom", "crash", "edit_error")),
))


class EngineDouble:
    """Records the requests it ran; ``started`` is set when a job starts (for cancel tests)."""

    def __init__(self, settings: EngineSettings, fail_load: bool = False, load_s: float = 0.0):
        self.settings = settings
        self.fail_load = fail_load
        self.load_s = load_s
        self.ran: list[DragRequest] = []
        self.prepared: list[PrepareRequest] = []  # every prepare started (a preempted one twice)
        self.stopped_prepares = 0
        self.started = threading.Event()
        self.released = 0

    def ensure_model(self, source: str | None = None, on_progress=None) -> None:
        time.sleep(self.load_s)
        if self.fail_load:
            raise OSError(f"no model at {self.settings.model}")

    def describe(self) -> dict:
        return {"device": "cpu", "memory": None, "model": self.settings.model, "methods": [SPEC.as_dict()]}

    def status(self) -> dict:
        return {"model": self.settings.model, "jobs_run": len(self.ran)}

    def release_memory(self) -> None:
        self.released += 1

    def run(self, request: DragRequest, on_progress, is_cancelled) -> DragResult:
        params = SPEC.resolve(request.params)
        self.ran.append(request)
        self.started.set()
        if request.model and request.model != self.settings.model:
            self.ensure_model(request.model)
        if params["fault"] == "oom":
            raise MemoryError("injected: out of memory")
        if params["fault"] == "crash":
            raise ZeroDivisionError("injected bug")
        if params["fault"] == "edit_error":
            raise EditError("drag_too_short", "the drag is too short", "drag further")
        for step in range(params["steps"]):
            if is_cancelled():
                raise JobCancelled()
            on_progress(Progress("drag", step, params["steps"], eta_s=0.1,
                                 preview=np.zeros((4, 6, 3), np.uint8),
                                 handles=[h for h, _ in request.points]))
            time.sleep(params["step_s"])
        image = request.image.copy()
        image[..., :3] = 255 - image[..., :3]
        return DragResult(image=image, handles=[t for _, t in request.points], timings={"drag": 0.01},
                          seed=request.seed if request.seed is not None else 7, cache_hits={"lora": False},
                          stats={"unet_forward": np.int64(params["steps"])})

    def prepare(self, request: PrepareRequest, on_progress, is_cancelled) -> PrepareResult:
        params = SPEC.resolve(request.params if request.method else {})
        if request.method not in (None, SPEC.name):
            raise EditError("unknown_method", f"there is no method called '{request.method}'")
        self.prepared.append(request)
        for step in range(1, params["steps"] + 1):
            if is_cancelled():
                self.stopped_prepares += 1
                raise JobCancelled()
            time.sleep(params["step_s"])
            on_progress(Progress("prepare", step, params["steps"]))
        return PrepareResult({"lora": False, "inversion": False}, {"lora": 0.01})
