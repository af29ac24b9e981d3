"""What the docker's buttons and the plug-in's actions do, over the editor-neutral core.

No Qt here: the extension calls ``tick()`` from a QTimer; views subscribe with ``listen``.
Every entry point reports problems as a sentence in ``message`` (never a traceback dialog).
"""
from __future__ import annotations

import functools
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from dragedit_protocol import DEFAULT_ENDPOINT, __version__ as PROTOCOL_PACKAGE_VERSION
from dragedit_protocol.editor.drag import DragPlan, DragRequest, compose_result, plan_drag
from dragedit_protocol.editor.errors import UserError
from dragedit_protocol.editor.jobs import JobState
from dragedit_protocol.editor.launcher import DaemonLauncher, is_local_endpoint, read_install_info
from dragedit_protocol.editor.params import MethodSpec, ParamStore, result_layer_name
from dragedit_protocol.editor.session import Client, DragSession, client_factory

from . import document
from .settings import Settings

PREVIEW_EVERY = 5  # steps between live previews
RESTORE_ACTIVE_TICKS = 20  # how long to watch for Krita activating an inserted layer


def reports_errors(method: Callable) -> Callable:
    """A UI entry point: any exception becomes ``self.message``; the views refresh afterwards.

    A new action also clears what the views still show of a finished drag (its status line,
    a full or half-filled progress bar, "Cancelled."): it is stale once the artist moves on.
    """
    @functools.wraps(method)
    def wrapper(self: DragController, *args: Any, **kwargs: Any) -> None:
        self.finished_job_shown = False
        self.message = ""
        try:
            method(self, *args, **kwargs)
        except Exception as exc:
            self.report(exc)
        self.notify()

    return wrapper


class DragController:
    """One per Krita instance: the daemon session, the artist's parameters and the drag in flight."""

    def __init__(self, app: Any, vendor_dir: Path, make_client: Callable[[str], Client] | None = None,
                 make_launcher: Callable[..., DaemonLauncher] = DaemonLauncher,
                 clock: Callable[[], float] = time.monotonic):
        self.app = app
        self._clock = clock
        self.vendor_dir = vendor_dir
        self.settings = Settings(app)
        self.params = ParamStore.from_json(self.settings.params_json)
        self.session: DragSession | None = None
        self.message = ""
        self._make_client = make_client or client_factory(
            "dragedit-krita", PROTOCOL_PACKAGE_VERSION, "Krita", str(app.version()))
        self._make_launcher = make_launcher
        self._listeners: list[Callable[[], None]] = []
        self._document_id: Any = None
        self._last_paint_layer: Any = None
        self._job_document: Any = None
        self._job_source: document.Source | None = None
        self._job_method: MethodSpec | None = None
        self._job_overrides: dict[str, Any] = {}
        self._restore_active: tuple[Any, Any, int] | None = None
        self.last_result_layer: Any = None
        self.finished_job_shown = False  # whether the views still show the last finished drag

    # ------------------------------------------------------------------ observers

    def listen(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def unlisten(self, callback: Callable[[], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def notify(self) -> None:
        for callback in list(self._listeners):
            callback()

    def report(self, exc: Exception) -> None:
        """Show a problem as a sentence (UserError), or a bug as a pointer to Krita's log."""
        if isinstance(exc, UserError):
            self.message = str(exc)
            return
        traceback.print_exc(file=sys.stderr)  # a bug: keep Krita running, say where the details are
        self.message = (f"DragEdit hit an unexpected problem ({type(exc).__name__}: {exc}). "
                        "The details are in Krita's log (Help > Show Krita log for bug reports).")

    # ------------------------------------------------------------------ daemon

    def endpoint(self) -> str:
        """The artist's setting, else $DRAGEDIT_ENDPOINT, else install.py's record, else the default."""
        if self.settings.endpoint:
            return self.settings.endpoint
        if os.environ.get("DRAGEDIT_ENDPOINT"):
            return os.environ["DRAGEDIT_ENDPOINT"]
        try:
            return read_install_info(self.vendor_dir).endpoint
        except UserError:
            return DEFAULT_ENDPOINT

    def _new_session(self) -> DragSession:
        endpoint = self.endpoint()
        launcher, why = None, ""
        if not is_local_endpoint(endpoint):
            why = f"the daemon at {endpoint} runs on another machine: start it there"
        else:
            try:
                launcher = self._make_launcher(read_install_info(self.vendor_dir), endpoint)
            except UserError as err:
                why = err.hint or err.message
        return DragSession(endpoint, self._make_client, launcher, not_startable=why, clock=self._clock)

    def connect(self) -> DragSession:
        """The session, created (and the daemon contacted) on first use."""
        if self.session is None:
            self.session = self._new_session()
        return self.session

    @reports_errors
    def set_endpoint(self, text: str) -> None:
        """Use another daemon endpoint ('' = the installed default) and reconnect."""
        text = text.strip()
        if text and not text.startswith(("tcp://", "ipc://")):
            raise UserError(f"'{text}' is not a daemon endpoint", "write it like tcp://127.0.0.1:48611")
        self.settings.endpoint = text
        if self.session is not None and self.session.busy:
            raise UserError("The endpoint is saved; it is used after the running drag", "")
        if self.session is not None:
            self.session.close()
        self.session = self._new_session()

    @reports_errors
    def set_model(self, value: str) -> None:
        """Drag with this model ('' = the daemon's own, 'toy' = the demo model, a file, folder or hub id)."""
        self.settings.model = value

    @property
    def daemon_text(self) -> str:
        return self.session.daemon_text if self.session else "Not connected yet."

    @property
    def methods(self) -> list[MethodSpec]:
        return self.session.methods if self.session else []

    def current_method(self) -> MethodSpec | None:
        methods = self.methods
        for m in methods:
            if m.name == self.params.method:
                return m
        return methods[0] if methods else None

    # ------------------------------------------------------------------ parameters

    def _save_params(self) -> None:
        self.settings.params_json = self.params.to_json()

    @reports_errors
    def set_method(self, name: str) -> None:
        self.params.method = name
        self._save_params()

    @reports_errors
    def set_param(self, name: str, value: Any) -> None:
        method = self.current_method()
        if method is None:
            raise UserError("The daemon has not said which methods it offers yet", "wait until it is ready")
        self.params.set(method, name, value)
        self._save_params()

    @reports_errors
    def reset_params(self) -> None:
        method = self.current_method()
        if method is not None:
            self.params.reset(method)
            self._save_params()

    @reports_errors
    def set_seed(self, text: str) -> None:
        self.params.set_seed(text)
        self._save_params()

    def set_prompt(self, text: str) -> None:
        self.params.prompt = text
        self._save_params()

    # ------------------------------------------------------------------ points

    def _document(self) -> Any:
        doc = self.app.activeDocument()
        if doc is None:
            raise UserError("No image is open", "open or create an image first")
        return doc

    @reports_errors
    def add_pair(self) -> None:
        document.add_pair(self._document())
        self.message = "Added a point pair: move its red handle and blue target with the shape tools."

    @reports_errors
    def remove_pair(self, number: int) -> None:
        """Remove the shape holding pair ``number`` (1-based)."""
        doc = self._document()
        strokes = document.read_strokes(doc)
        if not 1 <= number <= len(strokes):
            raise UserError(f"There is no point pair {number}", "pick a pair in the list first")
        document.remove_shape(doc, strokes[number - 1].shape_index)

    @reports_errors
    def clear_pairs(self) -> None:
        document.clear_pairs(self._document())

    def pair_lines(self) -> list[str]:
        """One line per stroke on the points layer, for the docker's list."""
        doc = self.app.activeDocument()
        if doc is None:
            return []
        try:
            strokes = document.read_strokes(doc)
        except UserError as err:
            return [str(err)]
        moving = self.current_handles()
        lines = []
        for number, stroke in enumerate(strokes, start=1):
            (hx, hy), (tx, ty) = stroke.anchors[0], stroke.anchors[-1]
            if len(stroke.anchors) < 2:
                lines.append(f"{number}: ({hx:.0f}, {hy:.0f}) has no target yet")
                continue
            line = f"{number}: ({hx:.0f}, {hy:.0f}) \u2192 ({tx:.0f}, {ty:.0f})"
            if len(moving) == len(strokes):
                line += f", now at ({moving[number - 1][0]:.0f}, {moving[number - 1][1]:.0f})"
            lines.append(line)
        return lines

    def editable_area_text(self) -> str:
        """What the next drag may change (the selection, or the area around the points), for the docker."""
        doc = self.app.activeDocument()
        return "" if doc is None else document.editable_area_text(doc)

    def current_handles(self) -> list[tuple[float, float]]:
        """Where the running drag has moved the handles so far, in image pixels (empty when idle)."""
        job, plan = self.job, self.plan
        if job is None or plan is None or job.finished or not job.handles:
            return []
        dx, dy = plan.layer.x + plan.region.x + 0.5, plan.layer.y + plan.region.y + 0.5  # pixel index -> centre
        return [(x + dx, y + dy) for x, y in job.handles]

    # ------------------------------------------------------------------ drag

    def _read_drag(self, doc: Any) -> tuple[document.Source, DragRequest]:
        """The source pixels and the request a drag of ``doc`` sends now: Drag and the prepare
        both send this, so the daemon's caches made by the prepare serve the drag."""
        node = None if self.settings.source == "visible" else document.pick_source_node(doc, self._last_paint_layer)
        pairs = document.read_pairs(doc)
        source = document.read_source(doc, node)
        mask = document.read_mask(doc, source.rect, self.settings.soft_edge)
        plan = plan_drag(source.rgba, source.rect, pairs, mask)
        method = self.current_method()
        # before the welcome (daemon still starting) the saved values go as they are: the daemon checks them
        method_name = method.name if method else (self.params.method or "dragdiffusion")
        overrides = self.params.overrides(method) if method else dict(self.params.values.get(method_name, {}))
        return source, DragRequest(plan, method_name, overrides, model=self.settings.model or None,
                                   prompt=self.params.prompt)

    @reports_errors
    def drag(self) -> None:
        """Read the document, plan the drag and hand it to the daemon (sent once it is ready)."""
        session = self.connect()
        if session.busy:
            raise UserError("A drag is already running", "wait for it to finish or cancel it")
        doc = self._document()
        source, request = self._read_drag(doc)
        method = self.current_method()
        if session.daemon_state == "ready" and method is None:
            log = session.welcome_field("log_file")
            raise UserError("The daemon offers no drag methods", f"see its log, {log}" if log else "see its log")
        session.require_model(self.settings.model)
        self._job_document, self._job_source, self._job_method = doc, source, method
        self._job_overrides = request.params
        session.start_drag(request, seed=self.params.seed,
                           preview_every=PREVIEW_EVERY if self.settings.live_preview else 0)
        document.save_document_settings(doc, self.params.to_json())

    def prepare_ahead(self) -> None:
        """Have the daemon get the next drag ready while the artist places points (the docker calls
        this once a second): with a selection, point pairs and the active layer as the source, what
        Drag would send goes as a prepare once the pairs, selection and settings have been still a
        moment (and only when it changed). The visible image is not prepared: reading it hides the
        points layer for a moment, which would flicker."""
        session, doc = self.session, self.app.activeDocument()
        if session is None or doc is None or doc.rootNode() is None:
            return
        shown = (self.prepare_text, self.message)
        try:
            session.prepare_when_quiet(self._prepare_scene(doc), lambda: self._read_drag(doc)[1])
        except Exception as exc:
            self.report(exc)
        if (self.prepare_text, self.message) != shown:
            self.notify()

    def _prepare_scene(self, doc: Any) -> tuple | None:
        """What the next drag is made of that is cheap to read (not the pixels); None: nothing to prepare."""
        selected = document.selection_bounds(doc)
        if self.settings.source == "visible" or selected is None:
            return None
        try:
            strokes = document.read_strokes(doc)
            node = document.pick_source_node(doc, self._last_paint_layer)
        except UserError:
            return None
        if not strokes:
            return None
        return (doc.rootNode().uniqueId(), node.uniqueId(), selected, tuple(tuple(s.anchors) for s in strokes),
                self.settings.soft_edge, self.settings.model, self.params.to_json())

    @property
    def prepare_text(self) -> str:
        """Whether the next drag will start at once, for the docker ('' when nothing was prepared)."""
        return self.session.prepare_text if self.session else ""

    @reports_errors
    def cancel(self) -> None:
        if self.session is None or not self.session.cancel():
            self.message = "No drag is running."

    @property
    def job(self) -> JobState | None:
        return self.session.job if self.session else None

    @property
    def shown_job(self) -> JobState | None:
        """The job whose status and progress the views show: a running one, or the one that just
        finished until the artist's next action."""
        job = self.job
        return job if job is not None and (not job.finished or self.finished_job_shown) else None

    @property
    def plan(self) -> DragPlan | None:
        return self.session.plan if self.session else None

    def result_name(self, job: JobState) -> str:
        """'DragDiffusion drag (seed 42; Drag rate 0.02)': the method, its seed and changed settings."""
        seed = job.result.get("seed") if job.result else None
        return result_layer_name(self._job_method, seed, self._job_overrides)

    def _finish(self, job: JobState) -> None:
        source, self._job_source = self._job_source, None
        if job.status == "failed":
            self.message = job.error
        elif job.status == "cancelled":
            self.message = "Cancelled: the image is unchanged."
        else:
            assert job.result is not None and source is not None and self.plan is not None
            if self._job_document.rootNode() is None:
                raise UserError("The image was closed before the drag finished", "drag again in an open image")
            rect, rgba = compose_result(self.plan, source.rgba, job.result["image"])
            self.last_result_layer = document.insert_result(self._job_document, source, rect, rgba,
                                                            self.result_name(job))
            self._restore_active = (source.node, self.last_result_layer, RESTORE_ACTIVE_TICKS)
            self.message = f"Added layer '{self.last_result_layer.name()}'. {job.result_summary()}"

    def tick(self) -> None:
        """Advance the session, insert finished results, follow the active document and layer;
        the views refresh only when something changed."""
        changed = False
        try:
            if self.session is not None:
                changed = self.session.tick()
                finished = self.session.take_finished()
                if finished is not None:
                    changed = True
                    self.finished_job_shown = True
                    self._finish(finished)
            changed = self._follow_document() or changed
        except Exception as exc:
            self.report(exc)
            changed = True
        if changed:
            self.notify()

    def _follow_document(self) -> bool:
        doc = self.app.activeDocument()
        if doc is None or doc.rootNode() is None:
            return False
        active = doc.activeNode()
        if self._restore_active is not None:
            # Krita activates an inserted layer a moment later: make the source active again so
            # that the artist can move the points and drag once more
            source, result, ticks = self._restore_active
            self._restore_active = (source, result, ticks - 1) if ticks > 1 else None
            if source is not None and active is not None and active.uniqueId() == result.uniqueId():
                doc.setActiveNode(source)
                active, self._restore_active = source, None
        if active is not None and active.type() == "paintlayer":
            self._last_paint_layer = active.uniqueId()
        doc_id = doc.rootNode().uniqueId()
        if doc_id == self._document_id:
            return False
        self._document_id = doc_id
        saved = document.load_document_settings(doc)
        if saved:
            self.params = ParamStore.from_json(saved)
        return True

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
