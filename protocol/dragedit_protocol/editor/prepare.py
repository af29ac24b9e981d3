"""Getting the daemon ready for a drag while the artist still places points (the ``prepare`` message).

The editor shows the tracker, on each check, a cheap ``scene``: what the drag would be made of
that costs nothing to read (the pairs, the selection's bounds, the layer, the settings), or None
when there is nothing to prepare. Once the scene has been quiet for QUIET_S (and again every
RECHECK_S, as the layer may have been painted on), the editor reads the drag request (the layer's
pixels) and offers it; the tracker sends a prepare only when the request's content differs from
the last one sent. It follows the daemon's ``prepared`` messages for that prepare and gives the
line the editor shows near Drag.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable, Protocol

from .drag import DragRequest
from .errors import sentence
from .jobs import format_eta

QUIET_S = 1.5     # the scene must be unchanged this long before the layer is read
RECHECK_S = 10.0  # an unchanged scene is read again this often: its pixels may have been painted on


class PrepareClient(Protocol):
    """What the tracker needs of ``dragedit_protocol.client.DaemonClient``."""

    def prepare(self, rgba: bytes, width: int, height: int, mask: bytes | None = None, method: str | None = None,
                params: dict | None = None, model: str | None = None, prompt: str = "",
                vae: str | None = None) -> str: ...


def content_key(fields: dict[str, Any]) -> str:
    """A hash of a request's fields (``DragRequest.image_fields``): equal keys, equal requests."""
    digest = hashlib.sha256()
    for name in sorted(fields):
        value = fields[name]
        encoded = bytes(value) if isinstance(value, (bytes, bytearray)) else json.dumps(value, sort_keys=True).encode()
        digest.update(f"{name}:{len(encoded)}:".encode() + encoded)
    return digest.hexdigest()


class PrepareTracker:
    """The last prepare sent (its content key and id) and where the daemon says it stands."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._scene: object = None
        self._scene_since = 0.0
        self._checked_scene: object = None
        self._checked_at = 0.0
        self.key = ""
        self.prepare_id = ""
        self.state = ""  # "" (none), sent, or one of messages.PREPARE_STATES
        self.step = 0
        self.total = 0
        self.eta_s: float | None = None
        self.error = ""

    def due(self, scene: object) -> bool:
        """Note the scene now; whether to read the request and ``offer`` it now: the scene is not
        None and has not changed for QUIET_S, and it is new or was last read RECHECK_S ago."""
        now = self._clock()
        if scene != self._scene:
            self._scene, self._scene_since = scene, now
            return False
        if scene is None or now - self._scene_since < QUIET_S:
            return False
        return scene != self._checked_scene or now - self._checked_at >= RECHECK_S

    def offer(self, request: DragRequest | None, client: PrepareClient) -> bool:
        """Send ``request`` as a prepare unless the last one had the same content; returns whether it
        was sent. None: the scene cannot be dragged as it is (the drag will say why), show nothing."""
        fields = request.image_fields() if request is not None else None
        key = content_key(fields) if fields is not None else ""
        if key != self.key:
            self.forget()
        self._checked_scene, self._checked_at = self._scene, self._clock()
        if fields is None or key == self.key:
            return False
        self.key = key
        self.prepare_id = client.prepare(**fields)
        self.state = "sent"
        return True

    def forget(self) -> None:
        """Drop the last prepare (a new connection, or nothing to prepare): the next offer sends again,
        and the scene is read again once quiet."""
        self.key, self.prepare_id, self.state = "", "", ""
        self.step, self.total, self.eta_s, self.error = 0, 0, None, ""
        self._checked_scene = None

    def apply(self, message: dict[str, Any]) -> bool:
        """Take in a ``prepared`` message; returns whether it was for the last prepare."""
        if message.get("type") != "prepared" or not self.prepare_id or message.get("prepare_id") != self.prepare_id:
            return False
        self.state = str(message.get("state", ""))
        self.step, self.total = int(message.get("step") or 0), int(message.get("total") or 0)
        self.eta_s = message.get("eta_s")
        error = message.get("error") or {}
        self.error = str(error.get("message", "")) if isinstance(error, dict) else ""
        if self.state == "superseded":
            self.forget()
        return True

    @property
    def text(self) -> str:
        """The line shown near Drag: getting ready (with progress), ready, why not, or nothing; nothing
        too while the scene has changed since it was last read (the prepare may be for other content)."""
        if self._scene != self._checked_scene:
            return ""
        if self.state in ("sent", "queued"):
            return "Getting ready for the drag..."
        if self.state == "running":
            if not self.total:
                return "Getting ready for the drag..."
            eta = format_eta(self.eta_s)
            return f"Getting ready for the drag: {self.step}/{self.total}" + (f" ({eta} left)" if eta else "")
        if self.state == "ready":
            return "Ready: the drag will start at once."
        if self.state == "failed":
            reason = self.error.strip().split(". ")[0].rstrip(".") or "the daemon gave no reason"
            return sentence(f"Could not get ready for the drag: {reason}")
        return ""
