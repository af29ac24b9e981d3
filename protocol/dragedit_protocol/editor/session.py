"""One editor's link to the daemon: connection state, daemon start-up, the running drag job and
the prepare of the next drag.

Editor-neutral and non-blocking: the editor calls ``tick()`` from its event loop (a Qt timer in
Krita, a GLib timeout in GIMP) and reads ``daemon_text``, ``job``, ``take_finished()`` and
``prepare_text``; once a second it offers what the next drag would be (``prepare_when_quiet``).
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Callable, Protocol

from ..messages import download_words
from .drag import DragPlan, DragRequest
from .errors import UserError, error_text, join_message
from .jobs import JobState
from .launcher import DaemonLauncher
from .params import MethodSpec, methods_from_welcome
from .prepare import PrepareTracker

# The model choices both plug-ins offer besides a file, folder or hub id the artist names:
# the daemon's own ('' in a job: no model field) and the demo model shipped with DragEdit.
DAEMON_MODEL = ("", "The daemon's model")
DEMO_MODEL = ("toy", "Demo model (tiny, runs on any CPU, for trying the tool)")


class Client(Protocol):
    """What the session needs of ``dragedit_protocol.client.DaemonClient``."""

    state: str
    welcome: dict | None
    error_text: str

    def poll(self, timeout_ms: int = 0) -> list[dict]: ...
    def submit(self, method: str, rgba: bytes, width: int, height: int, points: list, mask: bytes | None = None,
               params: dict | None = None, model: str | None = None, seed: int | None = None, prompt: str = "",
               preview_every: int = 0, job_id: str | None = None, vae: str | None = None) -> str: ...
    def prepare(self, rgba: bytes, width: int, height: int, mask: bytes | None = None, method: str | None = None,
                params: dict | None = None, model: str | None = None, prompt: str = "",
                vae: str | None = None) -> str: ...
    def cancel(self, job_id: str) -> None: ...
    def close(self) -> None: ...


def client_factory(client: str, client_version: str, editor: str = "", editor_version: str = "") -> Callable[[str], Client]:
    """A factory making the real DaemonClient for an endpoint (imports pyzmq only when called)."""
    def make(endpoint: str) -> Client:
        from ..client import DaemonClient
        from ..keys import KeysError, client_keys_from_environment

        try:
            keys = client_keys_from_environment()  # a daemon on another machine (CurveZMQ)
        except KeysError as exc:
            raise UserError("The DragEdit keys are not usable", str(exc)) from exc
        return DaemonClient(endpoint, client=client, client_version=client_version,
                            editor=editor, editor_version=editor_version,
                            server_public_key=keys.server_public_key, client_public_key=keys.client_public_key,
                            client_secret_key=keys.client_secret_key)

    return make


class DragSession:
    """The daemon connection (started on demand), at most one drag job at a time, and the prepare
    of the next drag."""

    START_AFTER_S = 1.5      # no welcome by then: start a local daemon
    START_TIMEOUT_S = 180.0  # a started daemon that has not answered by then has failed
    LOST_AFTER_S = 30.0      # a daemon silent this long during a job has lost it

    def __init__(self, endpoint: str, make_client: Callable[[str], Client], launcher: DaemonLauncher | None = None,
                 not_startable: str = "", clock: Callable[[], float] = time.monotonic):
        """``launcher`` starts a local daemon when none answers; without one, ``not_startable``
        says why (e.g. not installed) and is shown when the daemon cannot be reached."""
        self.endpoint = endpoint
        self._make_client = make_client
        self._launcher = launcher
        self._not_startable = not_startable
        self._clock = clock
        self.client = make_client(endpoint)
        self._connect_since = clock()
        self._started_at: float | None = None
        self._start_error = ""
        self.job: JobState | None = None
        self._request: DragRequest | None = None
        self._submit_args: dict[str, Any] = {}
        self.preparing = PrepareTracker(clock)
        self._finished: JobState | None = None
        self._lost_since: float | None = None

    # ------------------------------------------------------------------ daemon

    @property
    def daemon_state(self) -> str:
        """connecting | starting | loading | ready | unreachable | incompatible.

        loading: the daemon answers but its model is still loading (its methods are not known yet);
        it sends a new welcome when ready.
        """
        state = self.client.state
        if state == "ready" and self.welcome_field("state") == "loading model":
            return "loading"
        if state == "ready" or state == "incompatible":
            return state
        if self._start_error:
            return "unreachable"
        if self._started_at is not None:
            return "starting"
        return state

    @property
    def methods(self) -> list[MethodSpec]:
        return methods_from_welcome(self.client.welcome) if self.client.state == "ready" else []

    def welcome_field(self, name: str) -> Any:
        """A field of the daemon's welcome (at the top level or under 'engine'), or None."""
        welcome = self.client.welcome or {}
        if name in welcome:
            return welcome[name]
        engine = welcome.get("engine")
        return engine.get(name) if isinstance(engine, dict) else None

    @property
    def daemon_text(self) -> str:
        state = self.daemon_state
        if state == "loading":
            model = self.welcome_field("model")
            download = self.welcome_field("loading")
            if download:  # a hub model not in the cache yet (checked by messages.decode_daemon)
                return f"Downloading the model{' ' + str(model) if model else ''}: {download_words(download)}."
            return f"Daemon ready, loading the model{' ' + str(model) if model else ''}..."
        if state == "ready":
            model, device = self.welcome_field("model"), self.welcome_field("device")
            engine_state, error = self.welcome_field("state"), self.welcome_field("error")
            if self.model_missing:
                log = self.welcome_field("log_file")
                return join_message(
                    f"The daemon's model {model} is not on this machine (offline, or not downloaded yet)",
                    "choose another Model: the demo model works at once on any CPU"
                    + (f". Details in the daemon's log, {log}" if log else ""))
            if engine_state == "error" and isinstance(error, dict):
                return error_text(str(error.get("code", "model_error")), str(error.get("message", "")),
                                  str(error.get("hint", "")))
            where = " on ".join(str(x) for x in (model, device) if x)
            status = "Daemon busy with this drag" if self.busy else "Daemon ready"
            return f"{status}: {where}." if where else f"{status}."
        if state == "starting":
            return "Starting the DragEdit daemon (the first start can take a minute)..."
        if state == "connecting":
            return f"Connecting to the daemon at {self.endpoint}..."
        if state == "incompatible":
            return self.client.error_text or join_message(
                "The daemon and the plug-in are from different releases", "run python3 install.py again")
        return self._start_error or self._unreachable_text()

    @property
    def model_missing(self) -> bool:
        """The daemon answers, but its own model could not be loaded (a job naming another model still runs)."""
        error = self.welcome_field("error")
        return (self.daemon_state == "ready" and self.welcome_field("state") == "error" and isinstance(error, dict)
                and str(error.get("code", "")).startswith("model_load"))

    def require_model(self, model: str | None) -> None:
        """UserError when a drag would use the daemon's own model and that one is missing."""
        if self.model_missing and not model:
            raise UserError("The daemon's model is not on this machine",
                            "choose another Model: the demo model works at once on any CPU")

    def reconnect(self, endpoint: str | None = None, start_now: bool = False) -> None:
        """Drop the connection and connect again (to a new endpoint if given); forgets start failures.

        ``start_now``: start a local daemon on the next tick unless the new connection is ready.
        """
        self.client.close()
        self.endpoint = endpoint or self.endpoint
        self.client = self._make_client(self.endpoint)
        self.preparing.forget()
        self._connect_since = self._clock() - (self.START_AFTER_S if start_now else 0.0)
        self._start_error = ""
        self._started_at = None

    def _unreachable_text(self) -> str:
        reason = self.client.error_text or f"No DragEdit daemon answers at {self.endpoint}"
        return join_message(reason, self._not_startable or "start it with 'dragedit serve' or check the endpoint setting")

    def _start_daemon_if_needed(self) -> None:
        state = self.client.state
        if state == "ready":
            self._started_at, self._start_error = None, ""
            return
        if state == "incompatible" or self._start_error:
            return
        now = self._clock()
        if self._started_at is None:
            if state != "unreachable" and now - self._connect_since < self.START_AFTER_S:
                return
            if self._launcher is None:
                if state == "unreachable":
                    self._start_error = self._unreachable_text()
                return
            try:
                self._launcher.start()
            except UserError as err:
                self._start_error = str(err)
                return
            self._started_at = now
            # A fresh connection: the old one may have given up on the endpoint already.
            self.client.close()
            self.client = self._make_client(self.endpoint)
            self.preparing.forget()
            return
        assert self._launcher is not None
        code = self._launcher.exited_with()
        if code not in (None, 0) and now - self._started_at > 2.0:
            tail = self._launcher.log_tail()
            self._start_error = join_message(
                f"The DragEdit daemon stopped with exit status {code}" + (f": {tail}" if tail else ""),
                f"see {self._launcher.log_path} and run 'dragedit serve' in a terminal to see why")
        elif now - self._started_at > self.START_TIMEOUT_S:
            self._start_error = join_message(
                f"The DragEdit daemon did not answer within {self.START_TIMEOUT_S:.0f} s at {self.endpoint}",
                f"see {self._launcher.log_path} and run 'dragedit status'")

    # ------------------------------------------------------------------ jobs

    @property
    def busy(self) -> bool:
        return self.job is not None and not self.job.finished

    def start_drag(self, request: DragRequest, seed: int | None = None, preview_every: int = 0) -> JobState:
        """Queue a drag; it is sent as soon as the daemon is ready. UserError if one is running."""
        if self.busy:
            raise UserError("A drag is already running", "wait for it to finish or cancel it")
        self.job = JobState(job_id=uuid.uuid4().hex)
        self._lost_since = None
        self._request = request
        self._submit_args = {"seed": seed, "preview_every": preview_every}
        if self.daemon_state == "unreachable":
            self.reconnect(start_now=True)  # a new request tries again (and starts a daemon if it can)
        self._send_if_ready()
        return self.job

    @property
    def plan(self) -> DragPlan | None:
        """The plan of the current (or last) job."""
        return self._request.plan if self._request is not None else None

    def prepare_when_quiet(self, scene: object, read_request: Callable[[], DragRequest]) -> None:
        """Have the daemon get the next drag ready (its LoRA and inversion) while the artist places points.

        ``scene``: what the drag would be made of that is cheap to read (see ``prepare.PrepareTracker.due``),
        None when there is nothing to prepare; ``read_request`` reads the request Drag would send now,
        called only once the scene is quiet. Nothing is prepared while a drag runs or the daemon is away;
        a request that cannot be read (UserError: the drag would say why) prepares nothing.
        """
        if self.busy or self.client.state != "ready" or not self.preparing.due(scene):
            return
        try:
            request: DragRequest | None = read_request()
        except UserError:
            request = None
        self.preparing.offer(request, self.client)

    @property
    def prepare_text(self) -> str:
        """Whether the next drag will start at once (nothing while a drag runs or nothing was prepared)."""
        return "" if self.busy else self.preparing.text

    def cancel(self) -> bool:
        """Ask to stop the current job; returns whether there was one."""
        if not self.busy:
            return False
        assert self.job is not None
        if self.job.status != "waiting":
            self.client.cancel(self.job.job_id)
        if self.job.status == "waiting" or self.client.state != "ready":
            self._finish_local(self.job, "cancelled")  # nobody to wait for
        else:
            self.job.status = "cancelling"
        return True

    def take_finished(self) -> JobState | None:
        """The job that finished since the last call (done, failed or cancelled), once."""
        job, self._finished = self._finished, None
        return job

    def _finish_local(self, job: JobState, status: str, error: str = "") -> None:
        job.status = status
        job.error = error
        self._finished = job

    def _send_if_ready(self) -> None:
        job = self.job
        if job is None or job.status != "waiting":
            return
        state = self.client.state
        if state == "ready":
            request = self._request
            assert request is not None
            try:
                self.client.submit(points=request.plan.points, job_id=job.job_id, **request.image_fields(),
                                   **self._submit_args)
            except Exception as exc:  # the client validates before sending: show why, keep the editor running
                self._finish_local(job, "failed", join_message(f"The drag could not be sent: {exc}",
                                                               "check the points and parameters"))
                return
            job.status = "submitted"
        elif state == "incompatible" or self._start_error:
            self._finish_local(job, "failed", self.daemon_text)

    def tick(self) -> bool:
        """Poll the daemon and advance everything; returns whether anything visible changed."""
        before = (self.daemon_state, self.daemon_text)
        changed = False
        for message in self.client.poll(0):
            if message.get("type") == "welcome":
                self.preparing.forget()  # a daemon (re)started or reloaded: the next offer sends again
            if self.preparing.apply(message):
                changed = True
            elif self.job is not None and self.job.apply(message):
                changed = True
                if self.job.finished:
                    self._finished = self.job
        self._start_daemon_if_needed()
        job = self.job
        if job is not None and not job.finished:
            if job.status == "waiting":
                self._send_if_ready()
            elif self.client.state == "incompatible":
                self._finish_local(job, "failed", self.daemon_text)
            elif self.client.state == "unreachable":
                # the client reconnects by itself and fetches the result from a restarted daemon: wait a while
                self._lost_since = self._lost_since if self._lost_since is not None else self._clock()
                if self._clock() - self._lost_since > self.LOST_AFTER_S:
                    self._finish_local(job, "failed", join_message(
                        f"The daemon stopped answering during the drag ({self.client.error_text})",
                        "check that it is running ('dragedit status'), then drag again"))
            else:
                self._lost_since = None
            changed = changed or job.finished
        return changed or before != (self.daemon_state, self.daemon_text)

    def close(self) -> None:
        """Leave the daemon; one this session started and whose model failed to load is stopped too
        (it would otherwise stay up, useless, after the editor closed). A daemon started otherwise stays."""
        if self.busy and self.job is not None and self.job.status != "waiting":
            self.client.cancel(self.job.job_id)
        failed = self.model_missing or (self.daemon_state == "ready" and self.welcome_field("state") == "error")
        self.client.close()
        if failed and self._launcher is not None:
            self._launcher.stop()
