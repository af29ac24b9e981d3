"""The daemon: a ROUTER socket on the I/O thread, a fair job queue, one worker thread per device.

The I/O thread owns every piece of scheduling state (no locks): it decodes and checks client
messages, answers hello/ping/status/fetch/cancel at once, queues submits and prepares, hands each
free worker the next job (preferring the worker whose caches hold that image), and forwards the
workers' progress and outcomes to the job's client.
Every outcome is also kept on disk until fetched or expired, so a client that vanished can
come back for it.

Who is who: every connection is CurveZMQ, and a job belongs to the authenticated key that
submitted it (its ids live in that key's namespace, ``jobs.job_key``). A routing id is only an
address: a job's messages go to it only while the connection there has proven (by a message)
that it holds the job's key. When any connection drops, every address has to prove it again
(its next message, at most a heartbeat later); until then its messages wait (the latest
progress, and the final message). Tests build a ``Daemon`` with an engine factory and run it in a thread;
``dragedit serve`` passes ``dragedit.engine.Engine``.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import zmq

from dragedit_protocol import DEFAULT_ENDPOINT, messages
from dragedit_protocol.messages import DEFAULT_LIMITS, PROTOCOL_VERSION, TERMINAL_TYPES, Limits, ProtocolError

from .. import __version__
from ..config import Paths
from ..engine.api import EditError, EngineSettings
from . import security
from .convert import method_specs
from .jobs import FairQueue, Job, job_key
from .lock import AlreadyRunning, InstanceLock
from .model_policy import ModelPolicy
from .prepares import PrepareJob, PrepareQueue, Subscriber, image_key, prepare_key
from .results import ResultStore
from .worker import FAILED, LOADING, READY, EngineFactory, Worker

log = logging.getLogger(__name__)

# Seconds the connections stay open after the last final message (TERMINAL_TYPES) before
# the daemon closes them: a client's socket drops what it has not read yet when its connection closes
# (it queues only on live connections, ZMQ_IMMEDIATE), and the plug-ins read every 50-100 ms.
FINAL_MESSAGE_GRACE_S = 1.0
# The welcome that carries a model download's progress goes out again at most this often.
LOADING_RESEND_S = 1.0


class DaemonError(Exception):
    """The daemon cannot start; the message tells the user why and what to do."""


@dataclass
class DaemonOptions:
    endpoint: str = DEFAULT_ENDPOINT
    settings: EngineSettings = field(default_factory=EngineSettings)
    devices: tuple[str, ...] = ()  # one worker (engine, model copy, caches) per device; () = one on settings.device
    paths: Paths = field(default_factory=Paths.default)
    allow_models: tuple[str, ...] = ()
    model_folders: tuple[str, ...] = ()
    heartbeat_timeout_s: float = 10.0
    result_ttl_s: float = 24 * 3600
    max_queued_per_client: int = 32
    max_queued: int = 512
    max_queued_bytes: int = 1024 * 1024 * 1024  # image bytes waiting in the queue
    limits: Limits = DEFAULT_LIMITS


@dataclass
class Peer:
    """A connection the daemon has heard from (keyed by its routing id)."""

    user: str  # the authenticated Curve key of its last message
    last_seen: float
    hello: dict[str, Any] | None = None
    verified: bool = True  # no connection dropped since its last message
    held: dict[str, dict[str, Any]] = field(default_factory=dict)  # job key -> latest message not sent yet


class Daemon:
    """One DragEdit daemon. ``serve_forever()`` runs it in the calling thread until ``stop()``."""

    def __init__(self, options: DaemonOptions, engine_factory: EngineFactory):
        self.options = options
        self.instance = uuid.uuid4().hex
        self.bound_endpoint: str | None = None
        self.secure = True  # CurveZMQ on every endpoint (kept in welcome and status for older clients)
        self._factory = engine_factory
        self._paths = options.paths
        local = self._local = security.is_local_endpoint(options.endpoint)
        self._policy = ModelPolicy.for_daemon(options.settings.model, options.allow_models, options.model_folders,
                                              local=local)
        # a job's own VAE follows the same rules, with the daemon's --vae as its default
        self._vae_policy = ModelPolicy.for_daemon(options.settings.vae or "", options.allow_models,
                                                  options.model_folders, local=local)
        self._stop = threading.Event()
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._queue = FairQueue()
        self._prepares = PrepareQueue(remembered=options.settings.memory_cache_items)
        self._announced: dict[str, int] = {}
        self._workers: list[Worker] = []
        self._running: dict[Worker, Job | PrepareJob] = {}  # what each busy worker runs
        self._holds: dict[Worker, OrderedDict[str, None]] = {}  # images whose caches each worker holds, oldest first
        self._worker_states: dict[Worker, str] = {}
        self._worker_statuses: dict[Worker, dict[str, Any]] = {}
        self._peers: dict[bytes, Peer] = {}
        self._engine_state = LOADING
        self._engine_error: dict[str, str] | None = None
        self._loading: dict[str, Any] | None = None  # the model's download progress (worker.py: "loading")
        self._loading_unsent = False
        self._loading_sent = -LOADING_RESEND_S  # time.monotonic() of the last welcome sent for it
        self._description: dict[str, Any] = {}
        self._specs: dict = {}
        self._started_at = time.time()
        self._last_final_sent = -FINAL_MESSAGE_GRACE_S  # time.monotonic() of the last final message
        self.finished_cleanly = False
        self._log_hint = f"the daemon log is {self._paths.log_file}"

    # ------------------------------------------------------------------ life cycle

    def serve_forever(self) -> None:
        """Take the lock, bind, serve until ``stop()``, then shut down cleanly."""
        try:
            self._open()
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            raise
        self._started.set()
        try:
            self._loop()
        finally:
            self._close()

    def start_in_thread(self, timeout_s: float = 30.0) -> threading.Thread:
        """Run ``serve_forever`` in a thread; returns once bound (raises what stopped the start)."""
        thread = threading.Thread(target=self._serve_quietly, name="dragedit-daemon", daemon=True)
        thread.start()
        if not self._started.wait(timeout_s):
            raise DaemonError("the daemon did not start in time")
        if self._start_error is not None:
            raise self._start_error
        return thread

    def stop(self) -> None:
        """Ask the daemon to shut down (safe from any thread and from a signal handler)."""
        self._stop.set()

    def _serve_quietly(self) -> None:
        try:
            self.serve_forever()
        except BaseException:
            if not self._started.is_set() or self._start_error is None:
                log.exception("the daemon stopped with an error")

    def check(self) -> None:
        """Refuse a configuration that must not start (raises DaemonError): an endpoint other machines
        can reach with no client of another machine authorised."""
        endpoint = self.options.endpoint
        if not security.is_local_endpoint(endpoint) and not security.authorized(self._paths):
            raise DaemonError(
                f"{endpoint} can be reached from other machines, and no client of another machine is authorised "
                "(CurveZMQ keys). Create the server key with 'dragedit keys server' and authorise each client "
                "with 'dragedit keys new-client NAME' (see docs/daemon.md: Running the daemon for other machines), "
                "or bind to tcp://127.0.0.1.")

    def _open(self) -> None:
        opts = self.options
        self._paths.make()
        self.check()
        self._lock = InstanceLock(self._paths.lock)
        try:
            self._lock.acquire({"pid": os.getpid(), "endpoint": opts.endpoint})
        except AlreadyRunning as running:
            raise DaemonError(
                f"a DragEdit daemon is already running for this user (pid {running.info.get('pid', '?')}, "
                f"{running.info.get('endpoint', 'unknown endpoint')}); use it (dragedit status) or stop it first") from None
        try:
            self._open_sockets()
        except BaseException:
            self._lock.release()
            raise

    def _open_sockets(self) -> None:
        opts = self.options
        self._context = zmq.Context()
        self._auth = None
        router = self._context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 1000)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # sending to a vanished client raises instead of blocking
        # no ROUTER_HANDOVER: a connection cannot take over a routing id another live connection uses
        router.setsockopt(zmq.MAXMSGSIZE, opts.limits.max_message_bytes)  # refused before it is allocated
        router.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        router.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(opts.heartbeat_timeout_s * 1000))
        router.setsockopt(zmq.SNDHWM, 10000)
        try:
            local_key = security.ensure_local_keys(self._paths)
            self._local_key = local_key.decode("ascii")
            self._auth = security.secure_socket(self._context, router, self._paths, local_key)
            router.bind(opts.endpoint)
        except (zmq.ZMQError, security.KeySetupError, OSError) as exc:
            router.close(linger=0)
            if self._auth is not None:
                self._auth.stop()
            self._context.term()
            raise DaemonError(self._bind_error(exc)) from None
        self._router = router
        self._monitor = router.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.bound_endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        wake_endpoint = f"inproc://dragedit-wake-{self.instance}"
        self._wake = self._context.socket(zmq.PULL)
        self._wake.bind(wake_endpoint)
        self._store = ResultStore(self._paths.results, self._paths.jobs, ttl_s=opts.result_ttl_s)
        interrupted = self._store.recover()
        if interrupted:
            log.warning("%d job(s) were cut short by the previous daemon: %s", len(interrupted), ", ".join(interrupted))
        self._store.expire()
        for index, device in enumerate(opts.devices or (opts.settings.device,)):
            worker = Worker(self._context, wake_endpoint, self._factory, replace(opts.settings, device=device),
                            self._store, self._log_hint, name=f"dragedit-worker-{index}")
            self._workers.append(worker)
            self._holds[worker], self._worker_states[worker] = OrderedDict(), LOADING
            worker.start()
        log.info("DragEdit daemon %s serving %s (CurveZMQ: this user's clients%s), data folder %s", __version__,
                 self.bound_endpoint, " and the authorised ones" if security.authorized(self._paths) else "",
                 self._paths.root)

    def _bind_error(self, exc: Exception) -> str:
        if isinstance(exc, security.KeySetupError):
            return str(exc)
        if not isinstance(exc, zmq.ZMQError):
            return (f"cannot create the CurveZMQ keys in {self._paths.keys} ({exc}); free space on its disk, "
                    "or check that the data folder (DRAGEDIT_HOME) is yours")
        if exc.errno == zmq.EADDRINUSE:
            return (f"{self.options.endpoint} is already in use: another DragEdit daemon (of another user or data "
                    "folder) or another program listens there. Check with 'dragedit status', or choose another "
                    "address with --endpoint.")
        return f"cannot listen on {self.options.endpoint}: {exc}. Check the --endpoint address."

    def _close(self) -> None:
        log.info("shutting down")
        for running in self._running.values():
            running.cancel.set()
        for job in self._queue.ordered():
            self._queue.remove(job.key)
            self._finish_unrun(job, messages.error(
                "daemon_stopped", f"the daemon was stopped before job {job.job_id} ran",
                "start the daemon again (dragedit serve) and run the edit again", job.job_id))
        for worker in self._workers:
            worker.stop()
        deadline = time.monotonic() + 30
        for worker in self._workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        self._handle_worker_events()
        self._let_clients_read_final_messages()
        self._wake.close(linger=0)
        self._router.disable_monitor()
        self._monitor.close(linger=0)
        self._router.close(linger=1000)
        if self._auth is not None:
            self._auth.stop()
        self.finished_cleanly = not any(worker.is_alive() for worker in self._workers)
        if self.finished_cleanly:
            self._context.term()
        else:
            log.warning("the running job did not stop within 30 s; it is abandoned")
        self._lock.release()
        log.info("stopped")

    def _let_clients_read_final_messages(self) -> None:
        """Keep the connections open until FINAL_MESSAGE_GRACE_S after the last final message sent, so
        the clients read it before their sockets drop it (a job cancelled or refused by the shutdown)."""
        wait = self._last_final_sent + FINAL_MESSAGE_GRACE_S - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._wake, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        next_housekeeping = 0.0
        next_expiry = time.monotonic() + 600
        while not self._stop.is_set():
            ready = dict(poller.poll(100))
            if self._wake in ready:
                while self._wake.poll(0):
                    self._wake.recv()
            self._handle_disconnects()
            self._handle_worker_events()
            if self._router in ready:
                self._drain_router()
            now = time.monotonic()
            if self._loading_unsent and now >= self._loading_sent + LOADING_RESEND_S:
                self._loading_unsent, self._loading_sent = False, now
                self._welcome_all()
            if now >= next_housekeeping:
                next_housekeeping = now + 1.0
                self._forget_silent_peers()
                self._store.save_unsaved()
            if now >= next_expiry:
                next_expiry = now + 600
                self._store.expire()

    def _drain_router(self, budget: int = 1000) -> None:
        for _ in range(budget):
            try:
                frames = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._handle_frames(frames)

    def _handle_disconnects(self) -> None:
        """A connection dropped: its routing id may be taken by another one, so no address gets a
        job's messages until it has proven its key again."""
        dropped = False
        while self._monitor.poll(0):
            self._monitor.recv_multipart()
            dropped = True
        if dropped:
            for peer in self._peers.values():
                peer.verified = False

    def _handle_frames(self, frames: list[zmq.Frame]) -> None:
        peer_id = frames[0].bytes
        user = self._user_of(frames[-1])
        peer = self._peers.get(peer_id)
        if peer is None or peer.user != user:
            if peer is not None:
                log.warning("routing id %s is now used by another key; its jobs' messages stay with their owner",
                            peer_id.hex())
            peer = self._peers[peer_id] = Peer(user=user, last_seen=time.monotonic())
        peer.last_seen = time.monotonic()
        if not peer.verified:
            peer.verified = True
            self._send_held(peer_id, peer)
        if len(frames) != 2:
            self._send(peer_id, messages.error(
                "bad_message", f"a message must be a single frame, got {len(frames) - 1}",
                "use a DEALER socket and send one msgpack map per message"))
            return
        try:
            message = messages.decode_client(frames[1].buffer, self.options.limits)
        except ProtocolError as err:
            self._send(peer_id, messages.from_exception(err))
            return
        try:
            getattr(self, f"_on_{message['type']}")(peer_id, peer, message)
        except Exception:  # a bug must not take the daemon down: log it, answer (for its job), go on
            log.exception("failed to handle a %s message", message["type"])
            self._send(peer_id, messages.error("internal_error", "the daemon failed to handle this message",
                                               self._log_hint, message.get("job_id")))

    def _user_of(self, frame: zmq.Frame) -> str:
        try:
            return frame.get("User-Id") or ""
        except zmq.ZMQError:
            return ""

    def _send(self, peer_id: bytes, message: dict[str, Any]) -> bool:
        """Send without blocking; False if the client is gone or not reading (its job stays stored)."""
        try:
            self._router.send_multipart([peer_id, messages.encode(message)], zmq.NOBLOCK)
            if message.get("type") in TERMINAL_TYPES:
                self._last_final_sent = time.monotonic()
            return True
        except zmq.ZMQError as exc:  # EHOSTUNREACH: disconnected; EAGAIN: its buffer is full
            log.debug("could not send %s to a client: %s", message.get("type"), exc)
            return False

    def _send_to_owner(self, peer_id: bytes, job: Job | Subscriber, message: dict[str, Any]) -> None:
        """Send a job's (or a prepare subscriber's) message to an address only while the connection there
        holds its owner's key; otherwise keep it (the latest per ``job.key``) until that connection proves it."""
        peer = self._peers.get(peer_id)
        if peer is None or peer.user != job.owner:
            return  # not its owner's connection (any more): the outcome waits in the store for a fetch
        if peer.verified:
            self._send(peer_id, message)  # False: the client is gone or not reading; its outcome is stored
        else:
            peer.held[job.key] = message

    def _send_held(self, peer_id: bytes, peer: Peer) -> None:
        held, peer.held = peer.held, {}
        for message in held.values():
            self._send(peer_id, message)

    def _forget_silent_peers(self) -> None:
        """Forget connections silent for the heartbeat timeout, except those a job in flight reports to
        (their messages wait for them; a job's outcome is stored anyway)."""
        limit = time.monotonic() - self.options.heartbeat_timeout_s
        in_flight = [*self._queue.ordered(), *self._drags_running()]
        reporting = {job.peer for job in in_flight}.union(*(job.watchers for job in in_flight))
        for peer_id, peer in list(self._peers.items()):
            if peer.last_seen < limit and peer_id not in reporting:
                del self._peers[peer_id]
                if peer.hello:
                    log.info("client %s %s went silent", peer.hello["client"], peer.hello["client_version"])

    # ------------------------------------------------------------------ client messages

    def _on_hello(self, peer_id: bytes, peer: Peer, message: dict[str, Any]) -> None:
        if peer.hello is None:
            editor = f"{message['editor']} {message['editor_version']}".strip() or "no editor"
            log.info("client %s %s (%s) connected", message["client"], message["client_version"], editor)
        peer.hello = message
        self._send(peer_id, self._welcome())

    def _on_ping(self, peer_id: bytes, peer: Peer, message: dict[str, Any]) -> None:
        self._send(peer_id, messages.pong(self.instance))

    def _on_status(self, peer_id: bytes, peer: Peer, message: dict[str, Any]) -> None:
        self._send(peer_id, self._status(peer))

    def _on_submit(self, peer_id: bytes, peer: Peer, message: dict[str, Any]) -> None:
        job_id = message["job_id"]
        job = Job(job_id, peer_id, peer.user, self._lane(peer_id, peer), message)
        try:
            self._check_submit(job)
        except EditError as err:
            self._send(peer_id, messages.error(err.code, err.message, err.hint, job_id))
            return
        try:
            self._store.mark_pending(job.key, job_id, peer.user)
        except OSError as exc:
            log.warning("cannot write the marker of job %s: %s", job_id, exc)
        self._queue.add(job)
        log.info("job %s queued: %s, %dx%d, %d point(s)", job_id, message["method"], message["image"]["width"],
                 message["image"]["height"], len(message["points"]))
        if self._prepares.running is not None and not self._free_workers():
            self._prepares.running.preempt.set()  # a drag never waits for a prepare: it stops at its next step
        self._dispatch()
        self._announce_positions()

    def _lane(self, peer_id: bytes, peer: Peer) -> str:
        """What fairness counts: each connection of this user's own clients, each key of other machines."""
        return peer_id.hex() if peer.user == self._local_key else peer.user

    def _check_settings(self, message: dict[str, Any]) -> None:
        """The method and its parameters (once the engine has published them), the model and VAE policy."""
        if self._specs and message.get("method") is not None:
            spec = self._specs.get(message["method"])
            if spec is None:
                raise EditError("unknown_method", f"there is no method called '{message['method'][:64]}'",
                                f"choose one of: {', '.join(sorted(self._specs))}")
            spec.resolve(message["params"])
        message["model"] = self._policy.check(message["model"])
        message["vae"] = self._vae_policy.check(message.get("vae"))

    def _check_waiting_bytes(self, size: int) -> None:
        waiting = self._queue.size() + self._prepares.size()
        if waiting + size > self.options.max_queued_bytes:
            raise EditError(
                "queue_full", f"the jobs waiting already hold {waiting / 2**20:.0f} MB of images and this one "
                f"{size / 2**20:.0f} MB more; the daemon keeps at most {self.options.max_queued_bytes / 2**20:.0f} MB "
                "waiting", "wait for queued jobs to finish, send a smaller region, or start the daemon with a "
                "larger --max-queued-mb")

    def _check_submit(self, job: Job) -> None:
        message = job.request
        if self._find(job.key) is not None or self._store.has(job.key):
            raise EditError("duplicate_job", f"you already have a job with id {job.job_id}", "use a new job id")
        self._check_settings(message)
        if self._queue.count(job.lane) >= self.options.max_queued_per_client:
            raise EditError("queue_full", f"you already have {self.options.max_queued_per_client} jobs waiting",
                            "wait for some to finish or cancel them")
        if len(self._queue) >= self.options.max_queued:
            raise EditError("busy", f"the daemon already has {len(self._queue)} jobs waiting", "try again later")
        self._check_waiting_bytes(job.size)

    def _on_prepare(self, peer_id: bytes, peer: Peer, message: dict[str, Any]) -> None:
        subscriber = Subscriber(peer_id, peer.user, self._lane(peer_id, peer), message["prepare_id"])
        try:
            self._check_settings(message)
        except EditError as err:
            self._prepare_failed(subscriber, err)
            return
        key = prepare_key(message)
        for older in self._prepares.of_lane(subscriber.lane):  # this client now wants another image ready
            if older.key != key:
                self._unsubscribe(older, subscriber.lane)
        if key in self._prepares.done:  # done before: every phase it made is in the caches now
            cached = {phase: True for phase in self._prepares.done[key]}
            self._send(peer_id, messages.prepared(subscriber.prepare_id, "ready", cached=cached))
            return
        job = self._prepares.find(key)
        if job is None:
            job = PrepareJob(key, message, [])
            try:
                self._check_prepare_room(job)
            except EditError as err:
                self._prepare_failed(subscriber, err)
                return
            self._prepares.add(job)
            log.info("prepare %s queued: %s, %dx%d", subscriber.prepare_id, message.get("method") or "every method",
                     message["image"]["width"], message["image"]["height"])
        if subscriber not in job.subscribers:
            job.subscribers.append(subscriber)
        self._send_prepared(job, [subscriber])
        self._dispatch()

    def _check_prepare_room(self, job: PrepareJob) -> None:
        if len(self._prepares.waiting) >= self.options.max_queued:
            raise EditError("busy", f"the daemon already has {len(self._prepares.waiting)} prepares waiting",
                            "try again later")
        self._check_waiting_bytes(job.size)

    def _prepare_failed(self, subscriber: Subscriber, err: EditError) -> None:
        self._send(subscriber.peer, messages.prepared(subscriber.prepare_id, "failed", error={
            "code": err.code, "message": err.message, "hint": err.hint}))

    def _unsubscribe(self, job: PrepareJob, lane: str) -> None:
        """A lane's newer prepare supersedes ``job`` for it; a prepare nobody waits for is dropped."""
        gone = [s for s in job.subscribers if s.lane == lane]
        job.subscribers = [s for s in job.subscribers if s.lane != lane]
        for subscriber in gone:
            self._send_to_owner(subscriber.peer, subscriber, messages.prepared(subscriber.prepare_id, "superseded"))
        if not job.subscribers:
            self._prepares.drop(job)

    def _send_prepared(self, job: PrepareJob, to: list[Subscriber] | None = None, **extra: Any) -> None:
        """Tell a prepare's subscribers (or ``to``) where it stands."""
        state = extra.pop("state", job.state)
        for subscriber in job.subscribers if to is None else to:
            message = messages.prepared(subscriber.prepare_id, state, job.step, job.total, job.eta_s(), **extra)
            self._send_to_owner(subscriber.peer, subscriber, message)

    def _find(self, key: str) -> Job | None:
        """The waiting or running job with this key."""
        running = next((job for job in self._drags_running() if job.key == key), None)
        return running or self._queue.get(key)

    def _drags_running(self) -> list[Job]:
        return [job for job in self._running.values() if isinstance(job, Job)]

    def _free_workers(self) -> list[Worker]:
        return [worker for worker in self._workers if worker not in self._running]

    def _on_cancel(self, peer_id: bytes, peer: Peer, message: dict[str, Any]) -> None:
        job_id = message["job_id"]
        key = job_key(peer.user, job_id)
        job = self._find(key)
        if job is not None and key in self._queue:
            self._queue.remove(key)
            log.info("job %s cancelled while queued", job_id)
            self._finish_unrun(job, messages.cancelled(job_id))
            if job.peer != peer_id:
                self._send(peer_id, messages.cancelled(job_id))
            self._announce_positions()
        elif job is not None:
            log.info("job %s: cancel requested while running", job_id)
            if job.peer != peer_id:
                job.watchers.add(peer_id)  # it gets the final message too
            job.cancel.set()  # the worker answers cancelled (or the result, if it was done)
        elif self._store.get(key) is not None:
            self._send(peer_id, messages.error("already_finished", f"job {job_id} has already finished",
                                               "fetch its outcome instead", job_id))
        else:
            self._send(peer_id, self._unknown_job(key, job_id))

    def _on_fetch(self, peer_id: bytes, peer: Peer, message: dict[str, Any]) -> None:
        job_id = message["job_id"]
        key = job_key(peer.user, job_id)
        job = self._find(key)
        if job is not None:
            job.peer = peer_id  # from now on its messages go to this connection
            position = self._queue.positions().get(key, 0)
            self._send(peer_id, messages.queued(job_id, position))
            return
        record = self._store.get(key)
        if record is None:
            self._send(peer_id, self._unknown_job(key, job_id))
        elif self._send(peer_id, record["message"]):
            self._store.delete(key)

    def _unknown_job(self, key: str, job_id: str) -> dict[str, Any]:
        if self._store.lost(key):
            return messages.error("disk_full", f"job {job_id} finished, but its outcome could not be kept: the disk "
                                  f"of {self._paths.results} was full", "free space on that disk and run the edit again",
                                  job_id)
        hours = self.options.result_ttl_s / 3600
        return messages.error("unknown_job", f"this daemon knows no job {job_id}",
                              f"the id may be wrong, or its result expired (results are kept {hours:g} hours "
                              "or until fetched)", job_id)

    # ------------------------------------------------------------------ scheduling

    def _dispatch(self) -> None:
        """Give each free worker the next drag; when no drag waits, the next prepare (one at a time)."""
        free = self._free_workers()
        while free and len(self._queue):
            job = self._queue.pop_next()
            worker = self._assign(free, job, job.request)
            job.started = time.time()
            self._announced[job.key] = 0
            self._send_to_owner(job.peer, job, messages.queued(job.job_id, 0))
            worker.inbox.put(job)
        if free and self._prepares.running is None:
            prepare = self._prepares.pop_next()
            if prepare is not None:
                self._assign(free, prepare, prepare.request).inbox.put(prepare)
                self._send_prepared(prepare)

    def _assign(self, free: list[Worker], job: Job | PrepareJob, request: dict[str, Any]) -> Worker:
        """Take the free worker for ``job``: one whose caches hold its image if any, else a ready one."""
        image = image_key(request)
        worker = min(free, key=lambda w: (image not in self._holds[w], self._worker_states[w] != READY))
        free.remove(worker)
        self._running[worker] = job
        holds = self._holds[worker]
        holds[image] = None
        holds.move_to_end(image)
        while len(holds) > self.options.settings.memory_cache_items:
            holds.popitem(last=False)
        return worker

    def _announce_positions(self) -> None:
        """Tell every waiting job whose place in line changed where it stands now."""
        for key, position in self._queue.positions().items():
            if self._announced.get(key) != position:
                self._announced[key] = position
                job = self._queue.get(key)
                self._send_to_owner(job.peer, job, messages.queued(job.job_id, position))

    def _finish_unrun(self, job: Job, message: dict[str, Any]) -> None:
        """Close a job that never reached the worker: keep its outcome, tell its client."""
        self._announced.pop(job.key, None)
        self._store.put(job.key, job.owner, message)
        self._store.clear_pending(job.key)
        self._send_final(job, message)

    def _send_final(self, job: Job, message: dict[str, Any]) -> None:
        for peer_id in (job.peer, *sorted(job.watchers - {job.peer})):
            self._send_to_owner(peer_id, job, message)

    def _handle_worker_events(self) -> None:
        for worker in self._workers:
            while True:
                try:
                    event = worker.events.get_nowait()
                except queue.Empty:
                    break
                self._on_worker_event(worker, event)

    def _on_worker_event(self, worker: Worker, event: tuple) -> None:
        kind = event[0]
        if kind == "progress":
            _, job, message = event
            self._send_to_owner(job.peer, job, message)
        elif kind == "done":
            _, job, message = event
            self._announced.pop(job.key, None)
            self._running.pop(worker, None)
            self._send_final(job, message)
            self._dispatch()
            self._announce_positions()
        elif kind == "engine":
            _, state, description, error = event
            self._worker_states[worker] = state
            states = set(self._worker_states.values())
            # one ready worker makes the daemon ready; it reports loading while any other still loads
            self._engine_state = READY if READY in states else LOADING if LOADING in states else state
            self._engine_error = error if self._engine_state == FAILED else None
            if description is not None:
                self._description = description
                self._specs = method_specs(description)
            self._loading, self._loading_unsent = None, False
            log.info("engine on %s: %s%s", worker.device, state, f" ({error['message']})" if error else "")
            self._welcome_all()
        elif kind == "loading":
            self._loading, self._loading_unsent = event[1], True
        elif kind == "engine_status":
            self._worker_statuses[worker] = event[1]
        elif kind == "prepare_progress":
            _, prepare, step, total = event
            prepare.step, prepare.total = step, total
            self._send_prepared(prepare)
        elif kind == "prepare_done":
            self._running.pop(worker, None)
            self._prepare_done(*event[1:])

    def _prepare_done(self, job: PrepareJob, message: dict[str, Any]) -> None:
        """A prepare ended: ready, failed, or stopped (superseded by all its subscribers, or preempted
        by a drag: then it waits again, first among the prepares)."""
        if message["type"] == "result":
            self._prepares.finish(job, message["cache_hits"])
            job.step = job.total
            self._send_prepared(job, state="ready", cached=message["cache_hits"])
        elif message["type"] == "error":
            self._prepares.finish(job, None)
            self._send_prepared(job, state="failed", error={name: message[name] for name in ("code", "message", "hint")})
        else:
            self._prepares.finish(job, None)
            if job.preempt.is_set() and not job.cancel.is_set():
                self._prepares.put_back(job)
                self._send_prepared(job)
        self._dispatch()
        self._announce_positions()

    def _welcome_all(self) -> None:
        """Send the welcome again to every client that said hello (the engine's state changed)."""
        for peer_id, peer in self._peers.items():
            if peer.hello is not None:
                self._send(peer_id, self._welcome())

    # ------------------------------------------------------------------ descriptions

    def _welcome(self) -> dict[str, Any]:
        """Who we are and what the engine offers (methods with their parameter schemas)."""
        engine = {"device": None, "memory": None, "model": self.options.settings.model, "methods": []}
        engine.update(self._description)
        welcome = {**engine, "type": "welcome", "daemon_version": __version__, "protocol": PROTOCOL_VERSION,
                   "instance": self.instance, "state": self._engine_state, "error": self._engine_error,
                   "loading": self._loading, "limits": self.options.limits.as_dict(), "secure": self.secure}
        if self._local:  # a daemon for this machine: the plug-ins name its log in their error messages
            welcome["log_file"] = str(self._paths.log_file)
        return welcome

    def _status(self, peer: Peer) -> dict[str, Any]:
        """The daemon's state; running jobs' ids only for their owner."""

        def running(job: Job | PrepareJob | None) -> dict[str, Any] | None:
            if job is None:
                return None
            if isinstance(job, PrepareJob):
                return {"prepare": True, "method": job.request.get("method")}
            return {"job_id": job.job_id if job.owner == peer.user else None, "method": job.request["method"],
                    "running_s": round(time.time() - (job.started or time.time()), 1)}

        drags = self._drags_running()
        workers = [{"device": worker.device, "state": self._worker_states[worker],
                    "running": running(self._running.get(worker)), "engine": self._worker_statuses.get(worker)}
                   for worker in self._workers]
        return {
            "type": "status",
            "daemon_version": __version__,
            "instance": self.instance,
            "pid": os.getpid(),
            "endpoint": self.bound_endpoint,
            "uptime_s": round(time.time() - self._started_at, 1),
            "state": self._engine_state,
            "error": self._engine_error,
            "loading": self._loading,
            "model": self._description.get("model", self.options.settings.model),
            "device": self._description.get("device"),
            "engine": workers[0]["engine"],
            "running": running(drags[0] if drags else None),
            "workers": workers,
            "queued": len(self._queue),
            "prepare": self._prepares.summary(),
            "clients": sum(1 for peer in self._peers.values() if peer.hello is not None),
            "results_stored": self._store.count(),
            "secure": self.secure,
            "data_folder": str(self._paths.root),
        }
