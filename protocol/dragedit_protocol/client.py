"""A non-blocking client of the DragEdit daemon, driven from an editor's event loop.

Only pyzmq and msgpack are needed, so the plug-ins can vendor it. Call ``poll()`` from a timer
(every 50-200 ms) and whenever ``fileno()`` becomes readable; it sends what is pending,
keeps the heartbeat, and returns the daemon's messages as dicts.

Keys: every daemon speaks CurveZMQ. Without explicit keys (a daemon on another machine) the client
uses the keys the user's own daemon keeps in the user data folder (``keys.local_client_keys``);
until that daemon has created them it knocks without, and reads them again on every knock.

Connection handling: the DEALER socket keeps one random routing id for its whole life. The daemon
does not let a new connection take over a routing id another live connection uses, so after a
silent network drop the client is served again once the daemon has noticed (its heartbeat timeout).
Each ``pong``/``welcome`` carries the daemon's instance id; when it changes, the daemon was
restarted, and the client asks (``fetch``) for every job it has not seen finish: the answer
is the stored result, or an error saying the job was not finished.
"""
from __future__ import annotations

import os
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import zmq

from . import DEFAULT_ENDPOINT, messages
from .keys import KEYS_FOLDER, CurveKeys, data_dir, local_client_keys
from .messages import PROTOCOL_VERSION, TERMINAL_TYPES, Limits, ProtocolError

CONNECTING = "connecting"
READY = "ready"
UNREACHABLE = "unreachable"
INCOMPATIBLE = "incompatible"


class DaemonClient:
    """One connection to the daemon. States: connecting, ready, unreachable, incompatible."""

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        client: str,
        client_version: str,
        editor: str = "",
        editor_version: str = "",
        server_public_key: bytes | None = None,
        client_public_key: bytes | None = None,
        client_secret_key: bytes | None = None,
        data_folder: Path | str | None = None,
        heartbeat_interval_s: float = 2.0,
        timeout_s: float = 10.0,
    ):
        """``server_public_key`` (with this client's pair, or a new one): a daemon on another machine;
        without it, the local keys from ``data_folder`` (default: the user data folder)."""
        self.endpoint = endpoint
        self.state = CONNECTING
        self.welcome: dict[str, Any] | None = None
        self.error_text = ""
        self._hello = messages.hello(client, client_version, editor, editor_version)
        self._secure = server_public_key is not None
        self._local_folder = None if self._secure else Path(data_folder if data_folder is not None else data_dir())
        if self._secure:
            if client_public_key is None or client_secret_key is None:
                client_public_key, client_secret_key = zmq.curve_keypair()
            self._keys = CurveKeys(server_public_key, client_public_key, client_secret_key)
        else:
            self._keys = local_client_keys(self._local_folder)
        self._routing_id = b"c" + os.urandom(15)  # stable across reconnects
        self._interval = heartbeat_interval_s
        self._timeout = timeout_s
        self._outbox: deque[bytes] = deque()
        self._local: list[dict[str, Any]] = []  # messages produced here (local validation errors)
        self._outstanding: set[str] = set()  # submitted or fetched jobs without a final message yet
        self._restarted: set[str] = set()  # outstanding jobs being fetched from a restarted daemon
        self._instance: str | None = None
        now = time.monotonic()
        self._started = now
        self._last_received = now
        self._last_heartbeat = now
        self._last_key_check = now
        self._socket = self._open_socket()
        self._queue(self._hello)

    # ------------------------------------------------------------------ public API

    def poll(self, timeout_ms: int = 0) -> list[dict[str, Any]]:
        """Send what is pending, keep the heartbeat, and return every message that has arrived."""
        if self._socket is None:
            return []
        out, self._local = self._local, []
        self._heartbeat()
        self._flush()
        if timeout_ms > 0 and not out:
            self._socket.poll(timeout_ms, zmq.POLLIN)
        while True:
            try:
                data = self._socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            message = self._receive(data)
            if message is not None:
                out.append(message)
        self._check_timeout()
        self._flush()
        return out

    def submit(
        self,
        method: str,
        rgba: bytes,
        width: int,
        height: int,
        points: list[tuple[float, float, float, float]],
        mask: bytes | None = None,
        params: dict[str, Any] | None = None,
        model: str | None = None,
        seed: int | None = None,
        prompt: str = "",
        preview_every: int = 0,
        job_id: str | None = None,
        vae: str | None = None,
    ) -> str:
        """Queue a drag edit; returns its job id. A request that fails local checks comes back
        from the next ``poll()`` as an ``error`` message for that job id."""
        job_id = job_id or uuid.uuid4().hex
        message = messages.submit(job_id, method, rgba, width, height, points, mask, params, model,
                                  seed, prompt, preview_every, vae)
        try:
            messages.validate_client({**message, "v": PROTOCOL_VERSION}, self._limits())
        except ProtocolError as err:
            self._local.append(messages.from_exception(err) | {"job_id": job_id})
            return job_id
        self._outstanding.add(job_id)
        self._queue(message)
        return job_id

    def prepare(
        self,
        rgba: bytes,
        width: int,
        height: int,
        mask: bytes | None = None,
        method: str | None = None,
        params: dict[str, Any] | None = None,
        model: str | None = None,
        prompt: str = "",
        vae: str | None = None,
    ) -> str:
        """Ask the daemon to get this image ready for a drag (``messages.prepare``); returns the
        prepare id. ``prepared`` messages with that id say where it stands. A newer prepare supersedes
        this one unless it is for the same image and settings (then it is answered, not repeated)."""
        prepare_id = uuid.uuid4().hex
        message = messages.prepare(prepare_id, rgba, width, height, mask, method, params, model, prompt, vae)
        try:
            messages.validate_client({**message, "v": PROTOCOL_VERSION}, self._limits())
        except ProtocolError as err:
            self._local.append(messages.prepared(prepare_id, "failed", error={
                "code": err.code, "message": err.message, "hint": err.hint}))
            return prepare_id
        self._queue(message)
        return prepare_id

    def cancel(self, job_id: str) -> None:
        """Cancel a queued or running job; the daemon answers ``cancelled`` (or the final result)."""
        self._queue(messages.cancel(job_id))

    def fetch(self, job_id: str) -> None:
        """Ask again for a job's outcome (after a reconnect or a restart of the editor)."""
        self._outstanding.add(job_id)
        self._queue(messages.fetch(job_id))

    def request_status(self) -> None:
        """Ask for the daemon's status; it arrives as a ``status`` message."""
        self._queue(messages.status_request())

    def fileno(self) -> int:
        """The socket's notification file descriptor (edge-triggered: call poll() until it is empty)."""
        if self._socket is None:
            raise ValueError("the client is closed")
        return self._socket.getsockopt(zmq.FD)

    def close(self) -> None:
        """Close the socket at once; pending messages are dropped."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    @property
    def outstanding(self) -> frozenset[str]:
        """Jobs submitted or fetched whose final message has not arrived yet."""
        return frozenset(self._outstanding)

    # ------------------------------------------------------------------ internals

    def _open_socket(self) -> zmq.Socket:
        socket = zmq.Context.instance().socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.IMMEDIATE, 1)  # queue only on live connections; the rest waits in _outbox
        socket.setsockopt(zmq.ROUTING_ID, self._routing_id)
        socket.setsockopt(zmq.RECONNECT_IVL, 200)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        socket.setsockopt(zmq.MAXMSGSIZE, messages.MAX_MESSAGE_BYTES)
        socket.setsockopt(zmq.HEARTBEAT_IVL, max(100, int(self._interval * 1000)))
        socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, max(200, int(self._timeout * 1000)))
        self._keys.apply(socket)
        socket.connect(self.endpoint)
        return socket

    def _reload_local_keys(self) -> None:
        """Not welcomed yet: the local daemon may have created (or replaced) its keys since; use them."""
        if self._local_folder is None or self._socket is None:
            return
        keys = local_client_keys(self._local_folder)
        if keys != self._keys:
            self._keys = keys
            self._socket.close(linger=0)
            self._socket = self._open_socket()

    def _limits(self) -> Limits:
        published = (self.welcome or {}).get("limits")
        if not isinstance(published, dict):
            return messages.DEFAULT_LIMITS
        try:
            return Limits(**{k: int(v) for k, v in published.items() if k in Limits.__dataclass_fields__})
        except (TypeError, ValueError):
            return messages.DEFAULT_LIMITS

    def _queue(self, message: dict[str, Any]) -> None:
        self._outbox.append(messages.encode(message))
        self._flush()

    def _flush(self) -> None:
        while self._outbox and self._socket is not None:
            try:
                self._socket.send(self._outbox[0], zmq.NOBLOCK)
            except zmq.Again:  # not connected yet (IMMEDIATE) or the send buffer is full
                return
            self._outbox.popleft()

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if self.state != READY and now - self._last_key_check >= self._interval:
            self._last_key_check = now
            self._reload_local_keys()
        if now - self._last_heartbeat < self._interval or self._outbox:
            return
        self._last_heartbeat = now
        if self.state == READY:
            self._outbox.append(messages.encode(messages.ping()))
        elif self.state != INCOMPATIBLE:
            self._outbox.append(messages.encode(self._hello))  # keep knocking until welcomed

    def _check_timeout(self) -> None:
        if self.state in (UNREACHABLE, INCOMPATIBLE):
            return
        if time.monotonic() - self._last_received > self._timeout:
            self.state = UNREACHABLE
            if self._secure:
                hint = " and that its server key and your key pair are set up (dragedit keys)"
            elif not self._keys.complete:
                hint = (f"; its keys are not in {self._local_folder / KEYS_FOLDER} yet (the daemon creates them there "
                        "when it starts: run it as this user, with the same DRAGEDIT_HOME)")
            else:
                hint = ""
            self.error_text = (
                f"The DragEdit daemon at {self.endpoint} does not answer. "
                f"Check that it is running (start it with: dragedit serve){hint}."
            )

    def _receive(self, data: bytes) -> dict[str, Any] | None:
        self._last_received = time.monotonic()
        try:
            message = messages.decode_daemon(data)
        except ProtocolError as err:
            if err.code == "version_mismatch":
                self._incompatible(err.message)
            return None  # anything else unreadable from the daemon is dropped
        kind = message["type"]
        if kind == "error" and message.get("code") == "version_mismatch":
            self._incompatible(str(message.get("message", "")))
            return message
        if kind == "pong":
            if message.get("instance") != self._instance:
                self._queue(self._hello)  # the daemon restarted: introduce ourselves again
            elif self.state == UNREACHABLE:
                self.state, self.error_text = READY, ""
            return None
        if kind == "welcome":
            return self._welcomed(message)
        if self.state == UNREACHABLE and self._instance is not None:
            self.state, self.error_text = READY, ""  # the daemon we know is talking again
        job_id = message.get("job_id")
        if kind in TERMINAL_TYPES and job_id in self._outstanding:
            self._outstanding.discard(job_id)
            if job_id in self._restarted:
                self._restarted.discard(job_id)
                if kind == "error" and message.get("code") == "unknown_job":
                    message = messages.error(
                        "daemon_restarted", f"The daemon restarted; job {job_id} was not finished.",
                        "Run the edit again.", job_id)
        return message

    def _welcomed(self, message: dict[str, Any]) -> dict[str, Any] | None:
        if message.get("protocol") != PROTOCOL_VERSION:
            self._incompatible(f"the daemon speaks protocol {message.get('protocol')!r}, this plug-in {PROTOCOL_VERSION}")
            return message
        instance = message.get("instance")
        if self._instance is not None and instance != self._instance and self._outstanding:
            self._restarted = set(self._outstanding)
            for job_id in sorted(self._outstanding):
                self._queue(messages.fetch(job_id))
        self._instance = instance
        self.welcome = message
        self.state, self.error_text = READY, ""
        return message

    def _incompatible(self, detail: str) -> None:
        self.state = INCOMPATIBLE
        self.error_text = (
            f"The DragEdit plug-in and daemon are different versions ({detail}). "
            "Update both by running install.py again, then restart the daemon and the editor."
        )
