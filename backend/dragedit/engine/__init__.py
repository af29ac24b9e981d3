"""The drag engine: model loading, shared building blocks, and the Engine that runs a request."""

from .api import DragRequest, DragResult, EditError, EngineSettings, JobCancelled, Progress  # noqa: F401
from .engine import Engine  # noqa: F401
