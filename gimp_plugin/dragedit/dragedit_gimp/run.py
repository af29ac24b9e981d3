"""Run drags through the daemon from GLib's main loop, with progress in GIMP's progress bar.

The daemon session (``DragSession``) is non-blocking: a GLib timeout ticks it every TICK_MS, so
the plug-in's dialog stays responsive and GIMP's calls are all made from this (the main) thread.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from gi.repository import GLib, Gimp

from dragedit_protocol import DEFAULT_ENDPOINT
from dragedit_protocol.editor.drag import DragRequest
from dragedit_protocol.editor.errors import UserError
from dragedit_protocol.editor.jobs import JobState
from dragedit_protocol.editor.launcher import DaemonLauncher, is_local_endpoint, read_install_info
from dragedit_protocol.editor.params import MethodSpec, result_layer_name
from dragedit_protocol.editor.session import Client, DragSession, client_factory

from . import PLUGIN_VERSION
from .image import DragSource, insert_result, read_drag
from .settings import DragArgs, choose_method, resolve_params

TICK_MS = 50
ENDPOINT_VARIABLE = "DRAGEDIT_ENDPOINT"


class DragCancelled(Exception):
    """The job was cancelled (by the artist or on the daemon)."""


def make_session(vendor_dir: Path, make_client: Callable[[str], Client] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> DragSession:
    """A session with the daemon install.py configured (or $DRAGEDIT_ENDPOINT); it may start the daemon.
    ``clock``: the monotonic clock its waits and the prepare's quiet time are measured with."""
    launcher, not_startable, endpoint = None, "", DEFAULT_ENDPOINT
    try:
        info = read_install_info(vendor_dir)
        endpoint = info.endpoint or endpoint
    except UserError as err:
        info, not_startable = None, str(err)
    endpoint = os.environ.get(ENDPOINT_VARIABLE) or endpoint
    if info is not None:
        if is_local_endpoint(endpoint):
            launcher = DaemonLauncher(info, endpoint)
        else:
            not_startable = f"the daemon at {endpoint} is on another machine: start it there with 'dragedit serve'"
    if make_client is None:
        make_client = client_factory("dragedit-gimp", PLUGIN_VERSION, "GIMP", Gimp.version())
    return DragSession(endpoint, make_client, launcher=launcher, not_startable=not_startable, clock=clock)


def run_main_loop(step: Callable[[], bool], interval_ms: int = TICK_MS) -> None:
    """Call ``step`` from GLib's main loop every interval until it returns False; re-raises its errors."""
    loop = GLib.MainLoop()
    raised: list[BaseException] = []

    def tick() -> bool:
        try:
            if step():
                return GLib.SOURCE_CONTINUE
        except BaseException as exc:  # a GLib callback must not raise: hand it to the caller
            raised.append(exc)
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.timeout_add(interval_ms, tick)
    loop.run()
    if raised:
        raise raised[0]


class GimpProgress:
    """GIMP's progress bar for one job: text = phase and step, bar = the phase's fraction."""

    def __init__(self, title: str):
        self.title = title
        self._shown: tuple[str, float] | None = None
        Gimp.progress_init(f"{title}: waiting for the daemon...")

    def show(self, job: JobState) -> None:
        text, fraction = f"{self.title}: {job.status_text()}", round(job.fraction, 3)
        if self._shown == (text, fraction):
            return
        if self._shown is None or self._shown[0] != text:
            Gimp.progress_set_text(text)
        Gimp.progress_update(fraction)
        self._shown = (text, fraction)

    def end(self) -> None:
        Gimp.progress_end()


def wait_for_daemon(session: DragSession) -> list[MethodSpec]:
    """Tick until the daemon is ready (starting it if needed); its methods, or UserError why not."""
    def waiting() -> bool:
        session.tick()
        state = session.daemon_state
        if state in ("unreachable", "incompatible"):
            raise UserError(session.daemon_text)
        return state != "ready"

    run_main_loop(waiting)
    return session.methods


def drag_request(source: DragSource, args: DragArgs) -> DragRequest:
    """What the drag of ``source`` with ``args`` sends: the dialog's prepare sends the same, so the
    daemon's caches made by the prepare serve the drag."""
    return DragRequest(source.plan, args.method, args.params, model=args.model or None, prompt=args.prompt)


def start_drag(session: DragSession, source: DragSource, args: DragArgs) -> tuple[MethodSpec, JobState]:
    """Check the arguments against the daemon's schema and queue the drag."""
    method = choose_method(session.methods, args.method)
    params = resolve_params(method, args.params)
    session.require_model(args.model)
    job = session.start_drag(drag_request(source, replace(args, method=method.name, params=params)), seed=args.seed)
    return method, job


def finish_drag(source: DragSource, method: MethodSpec, job: JobState) -> Gimp.Layer:
    """The new layer for a finished job; UserError if it failed, DragCancelled if it was cancelled."""
    if job.status == "cancelled":
        raise DragCancelled()
    if job.status != "done" or job.result is None:
        raise UserError(job.error or "The drag failed", "see the daemon's log ('dragedit status' shows where)")
    layer = insert_result(source, job.result["image"], result_layer_name(method, job.result.get("seed")))
    Gimp.displays_flush()
    return layer


def run_noninteractive(session: DragSession, image: Gimp.Image, drawables: list, args: DragArgs) -> Gimp.Layer:
    """One drag from start to finish (scripts, batch mode, repeat with last values)."""
    source = read_drag(image, drawables, args.path_name, args.soft_edge)
    wait_for_daemon(session)
    method, job = start_drag(session, source, args)
    progress = GimpProgress(f"Drag Edit ({method.title})")

    def running() -> bool:
        session.tick()
        progress.show(job)
        return not job.finished

    try:
        run_main_loop(running)
    finally:
        progress.end()
    return finish_drag(source, method, job)
