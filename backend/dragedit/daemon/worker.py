"""A worker thread: creates an engine on its device, then runs jobs (drags and prepares) one at a time.

The daemon runs one per device. Each talks to the I/O thread through its own thread-safe queue of
events plus a wake-up message on its own inproc PUSH socket (one socket per thread; the I/O thread
pulls from all of them). Events:
``("engine", state, description, error)``, ``("loading", download)`` (a hub model's download
progress while it loads, engine/download.py; None when none runs), ``("progress", job, message)``,
``("done", job, message)``, ``("engine_status", status)``, and for prepares
``("prepare_progress", prepare, step, total)`` and ``("prepare_done", prepare, message)`` (the
message a drag would have ended with: result (with ``cache_hits`` only), cancelled or error).
"""
from __future__ import annotations

import errno
import logging
import queue
import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable

import zmq

from dragedit_protocol import messages

from ..engine.api import EditError, EngineSettings, JobCancelled, describe_source
from ..engine.download import DownloadWatcher
from .convert import plain, progress_message, result_message, to_prepare_request, to_request
from .jobs import Job
from .prepares import PrepareJob
from .results import ResultStore

log = logging.getLogger(__name__)

EngineFactory = Callable[[EngineSettings], Any]

LOADING, READY, FAILED = "loading model", "ready", "error"

OOM_HINT = ("select a smaller region, lower the work size or the number of steps, "
            "or use another precision (dragedit serve --dtype fp16)")


class Worker(threading.Thread):
    """Owns an engine on ``settings.device``. ``inbox`` takes jobs (None to stop); events go to ``events``."""

    def __init__(self, context: zmq.Context, wake_endpoint: str, engine_factory: EngineFactory,
                 settings: EngineSettings, store: ResultStore, log_hint: str, name: str = "dragedit-worker"):
        super().__init__(name=name, daemon=True)
        self.inbox: queue.Queue[Job | PrepareJob | None] = queue.Queue()
        self.events: queue.Queue[tuple] = queue.Queue()
        self._context = context
        self._wake_endpoint = wake_endpoint
        self._factory = engine_factory
        self._settings = settings
        self._store = store
        self._log_hint = log_hint
        self._engine: Any = None
        self._model_failed = False  # the daemon's own model did not load (the engine may still serve others)
        self._wake: zmq.Socket | None = None

    def run(self) -> None:
        self._wake = self._context.socket(zmq.PUSH)
        self._wake.setsockopt(zmq.LINGER, 0)
        self._wake.connect(self._wake_endpoint)
        try:
            self._load_engine()
            while True:
                job = self.inbox.get()
                if job is None:
                    break
                if isinstance(job, PrepareJob):
                    self._prepare(job)
                else:
                    self._run(job)
        finally:
            self._wake.close()

    @property
    def device(self) -> str:
        return self._settings.device

    def stop(self) -> None:
        """Ask the thread to end after the current job (set the job's cancel flag to hurry it)."""
        self.inbox.put(None)

    # ------------------------------------------------------------------ internals

    def _post(self, event: tuple) -> None:
        self.events.put(event)
        try:
            self._wake.send(b"", zmq.NOBLOCK)
        except zmq.Again:  # the I/O thread is behind; it drains the whole queue when it wakes
            pass

    def _load_engine(self) -> EditError | None:
        """Create the engine and load the daemon's model; the load's failure, or None.

        When only the model fails (missing, still downloading, offline), the engine is kept and its
        methods are published: a job that names another model (e.g. the demo model "toy") still
        runs, and a job without one tries the daemon's model again.
        """
        self._post(("engine", LOADING, None, None))
        description = None
        try:
            engine = self._factory(self._settings)
            description = plain(engine.describe())
            with self._watch_download():
                engine.ensure_model()  # load the model now, so the first job does not wait for it
            description = plain(engine.describe())
        except Exception as exc:
            failure = self._load_error(exc)
            log.exception("the engine could not be created" if description is None else "the model could not be loaded")
            if description is not None:
                self._engine, self._model_failed = engine, True
            self._post(("engine", FAILED, description,
                        {"code": failure.code, "message": failure.message, "hint": failure.hint}))
            return failure
        self._engine, self._model_failed = engine, False
        self._post(("engine", READY, description, None))
        self._post_status()
        return None

    def _watch_download(self) -> AbstractContextManager:
        """While the daemon's model loads from the hub, post its download progress (a folder or a
        file loads without)."""
        if describe_source(self._settings.model) != "hub":
            return nullcontext()
        return DownloadWatcher(self._settings.model, self._post_download)

    def _post_download(self, download: dict[str, Any] | None) -> None:
        """Called on the watcher's thread: the event goes in the queue without a wake-up, as the wake
        socket belongs to this thread (the I/O thread reads the queue at least every 100 ms)."""
        self.events.put(("loading", download))

    def _load_error(self, exc: Exception) -> EditError:
        if _is_disk_full(exc):  # also when the loader wrapped the OSError in its own error
            return EditError("disk_full", f"the model '{self._settings.model}' could not be loaded: a disk is full ({exc})",
                             "free space on the disk of the data folder, the model cache or the daemon's log, "
                             "then restart the daemon; " + self._log_hint)
        if isinstance(exc, EditError):
            return EditError(exc.code, exc.message, f"{exc.hint}; {self._log_hint}" if exc.hint else self._log_hint)
        return EditError(
            "model_load_failed",
            f"the model '{self._settings.model}' could not be loaded ({type(exc).__name__}: {exc})",
            "check --model: a hub id, a diffusers folder or a .safetensors file; " + self._log_hint)

    def _run(self, job: Job) -> None:
        log.info("job %s: %s started", job.job_id, job.request["method"])
        message = self._outcome(job)
        log.info("job %s: %s", job.job_id, message["type"] if message["type"] != "error" else message["code"])
        self._store.put(job.key, job.owner, message, durable=True)
        self._store.clear_pending(job.key)
        self._post(("done", job, message))
        if self._model_failed and message["type"] == "result":  # a model loaded after all: say what it is
            self._model_failed = False
            self._post(("engine", READY, plain(self._engine.describe()), None))
        self._post_status()

    def _prepare(self, job: PrepareJob) -> None:
        """Run a prepare (stopping at a step when cancelled or preempted); its outcome as a drag's would be."""
        key = job.key  # its subscribers (and their ids) belong to the I/O thread
        if self._engine is None or (self._model_failed and not job.request.get("model")):
            message = messages.error("model_not_loaded", "the daemon's model is not loaded, so nothing can be prepared",
                                     "a drag tries to load it again and says what is wrong", key)
        else:
            def on_progress(progress) -> None:
                self._post(("prepare_progress", job, int(progress.step), int(progress.total)))

            def stopping() -> bool:
                return job.cancel.is_set() or job.preempt.is_set()

            def prepare() -> dict[str, Any]:
                result = self._engine.prepare(to_prepare_request(job.request), on_progress, stopping)
                return {"type": "result", "cache_hits": plain(result.cache_hits), "timings": plain(result.timings)}

            message = self._attempt(key, prepare)
        log.info("prepare %s: %s", key, message["type"] if message["type"] != "error" else message["code"])
        self._post(("prepare_done", job, message))
        self._post_status()

    def _outcome(self, job: Job) -> dict[str, Any]:
        if job.cancel.is_set():
            return messages.cancelled(job.job_id)
        names_model = bool(job.request.get("model"))
        if self._engine is None or (self._model_failed and not names_model):  # try the daemon's model again
            failure = self._load_engine()
            if failure is not None and (self._engine is None or not names_model):
                return messages.error(failure.code, failure.message, failure.hint, job.job_id)

        def on_progress(progress) -> None:
            self._post(("progress", job, progress_message(job.job_id, progress)))

        return self._attempt(job.job_id, lambda: result_message(
            job.job_id, self._engine.run(to_request(job.request), on_progress, job.cancel.is_set)))

    def _attempt(self, job_id: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``work()``'s message, or the cancelled / error message its failure means to the user."""
        try:
            return work()
        except JobCancelled:
            return messages.cancelled(job_id)
        except EditError as exc:
            if exc.code == "out_of_memory":
                self._release_memory()
            return messages.error(exc.code, exc.message, exc.hint, job_id)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._release_memory()
            if _is_out_of_memory(exc):
                return messages.error("out_of_memory", f"the device ran out of memory ({exc})", OOM_HINT, job_id)
            if _is_disk_full(exc):
                return messages.error("disk_full", f"the disk is full ({exc})",
                                      f"free space on the disk of {self._settings.cache_dir or 'the cache folder'} "
                                      "or lower the disk cache size", job_id)
            return messages.error("internal_error", f"the edit failed: {type(exc).__name__}: {exc}",
                                  "try other parameters or a smaller region; " + self._log_hint, job_id)

    def _release_memory(self) -> None:
        try:
            self._engine.release_memory()
        except Exception:
            log.exception("releasing the engine's memory failed")

    def _post_status(self) -> None:
        if self._engine is None:
            return
        try:
            self._post(("engine_status", plain(self._engine.status())))
        except Exception:
            log.exception("the engine's status could not be read")


def _is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (any device), MemoryError, or an old-style 'out of memory' RuntimeError."""
    if isinstance(exc, MemoryError):
        return True
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        return True
    return "out of memory" in str(exc).lower()


def _is_disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT anywhere in the exception chain (some writers wrap the OSError in their own error)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "no space left on device" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False
