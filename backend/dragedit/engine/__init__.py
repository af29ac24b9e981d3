"""The drag engine: model loading, shared building blocks, and the Engine that runs a request.

``Engine`` is imported on first use, so that importing the request/result types (the daemon does
at start-up) does not load torch and diffusers: the daemon listens at once and loads them in its
worker thread.
"""

from .api import DragRequest, DragResult, EditError, EngineSettings, JobCancelled, Progress  # noqa: F401


def __getattr__(name: str):
    if name == "Engine":
        from .engine import Engine

        return Engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
