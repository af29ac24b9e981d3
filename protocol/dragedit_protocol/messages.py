"""DragEdit wire messages: msgpack maps with a protocol version, validated before use.

Every message is a msgpack map with at least ``v`` (the protocol version) and ``type``.
Client -> daemon: hello, submit, prepare, cancel, status, fetch, ping.
Daemon -> client: welcome, queued, progress, result, error, cancelled, prepared, status, pong.

``decode`` bounds what a message may cost before and while unpacking it: a message over
MAX_SMALL_MESSAGE bytes must be a submit or a prepare (its type is read from its first bytes, before
the rest is decoded; only those carry images), at most MAX_OBJECTS objects are decoded (counted as
they are built) and nothing is nested more than MAX_DEPTH deep; so a message costs about its
own size in memory and little time. It rejects extension types and validates every field of
the message type; any problem raises ``ProtocolError`` carrying an error code, a sentence and a
hint, which the daemon sends back as an ``error`` message.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgpack

PROTOCOL_VERSION = 1

# Hard ceilings used while unpacking; the daemon may announce lower limits in ``welcome``.
MAX_IMAGE_SIDE = 16384
MAX_IMAGE_PIXELS = 64 * 1024 * 1024
MAX_SMALL_MESSAGE = 64 * 1024  # every message but a submit (and a result) is at most this big
MAX_MESSAGE_BYTES = MAX_IMAGE_PIXELS * 5 + MAX_SMALL_MESSAGE  # an RGBA image, its mask and the other fields
MAX_OBJECTS = 10_000  # decoded objects (maps, arrays and their items) in one message
MAX_DEPTH = 8
MAX_POINTS = 64
MAX_STRING = 4096
MAX_PARAMS = 128
MAX_ARRAY = 4096
MAX_MAP = 256

CLIENT_TYPES = ("hello", "submit", "prepare", "cancel", "status", "fetch", "ping")
DAEMON_TYPES = ("welcome", "queued", "progress", "result", "error", "cancelled", "prepared", "status", "pong")
TERMINAL_TYPES = ("result", "error", "cancelled")  # a job's last message
LARGE_CLIENT_TYPES = ("submit", "prepare")  # the client messages that carry images
LARGE_DAEMON_TYPES = ("result", "progress", "welcome", "status")  # images, previews, method schemas
PHASES = ("load", "lora", "inversion", "drag", "denoise")
# a prepare's life: waiting, running, done (the drag of that image will start at once), replaced by a
# newer prepare of the same client, or failed (its error says why; a drag would fail the same way)
PREPARE_STATES = ("queued", "running", "ready", "superseded", "failed")


class ProtocolError(ValueError):
    """A message that cannot be accepted; ``code`` is machine readable, ``hint`` says what to do."""

    def __init__(self, code: str, message: str, hint: str = "", job_id: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.job_id = job_id


@dataclass(frozen=True)
class Limits:
    """Size limits a daemon enforces; published in ``welcome``."""

    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_image_side: int = MAX_IMAGE_SIDE
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_points: int = MAX_POINTS

    def as_dict(self) -> dict[str, int]:
        return {
            "max_message_bytes": self.max_message_bytes,
            "max_image_side": self.max_image_side,
            "max_image_pixels": self.max_image_pixels,
            "max_points": self.max_points,
        }


DEFAULT_LIMITS = Limits()


# --------------------------------------------------------------------------- encoding


def encode(message: dict[str, Any]) -> bytes:
    """Pack a message map, adding the protocol version."""
    body = dict(message)
    body.setdefault("v", PROTOCOL_VERSION)
    return msgpack.packb(body, use_bin_type=True)


def _no_ext(code: int, data: bytes) -> Any:
    raise ProtocolError("bad_message", "msgpack extension types are not accepted")


def unpack(data: bytes, limits: Limits = DEFAULT_LIMITS, large_types: tuple[str, ...] = LARGE_CLIENT_TYPES) -> dict[str, Any]:
    """Unpack bytes into a map within the size, object and depth bounds, without extension types;
    only ``large_types`` may be over MAX_SMALL_MESSAGE bytes. No validation of fields."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError("bad_message", "message is not bytes")
    if len(data) > limits.max_message_bytes:
        raise ProtocolError(
            "too_large",
            f"message of {len(data)} bytes exceeds the limit of {limits.max_message_bytes}",
            "send a smaller image or selection",
        )
    if len(data) > MAX_SMALL_MESSAGE:
        kind = peek_type(data)
        if kind not in large_types:
            shown = f"a '{kind[:40]}' message" if isinstance(kind, str) else "a message without a type in its first bytes"
            raise ProtocolError(
                "too_large", f"{shown} of {len(data)} bytes exceeds {MAX_SMALL_MESSAGE} bytes; only submit and prepare "
                "carry images", "send images in a submit or prepare message, with its 'v' and 'type' first")
    budget = _ObjectBudget(MAX_OBJECTS)
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            ext_hook=_no_ext,
            list_hook=budget.take,
            object_hook=budget.take,
            max_bin_len=limits.max_message_bytes,
            max_str_len=MAX_STRING * 4,
            max_array_len=MAX_ARRAY,
            max_map_len=MAX_MAP,
            max_ext_len=0,
        )
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack raises many types (ValueError, ExtraData, StackError...)
        raise ProtocolError("bad_message", f"not a valid msgpack message: {type(exc).__name__}: {str(exc)[:200]}")
    if not isinstance(obj, dict):
        raise ProtocolError("bad_message", "message is not a map")
    _check_depth(obj)
    return obj


def peek_type(data: bytes) -> Any:
    """The value of a message's 'type' when it is among the entries in its first MAX_SMALL_MESSAGE
    bytes (None otherwise), read without decoding the rest."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, ext_hook=_no_ext, max_buffer_size=MAX_SMALL_MESSAGE,
                                max_str_len=MAX_STRING, max_bin_len=MAX_SMALL_MESSAGE, max_array_len=MAX_ARRAY,
                                max_map_len=MAX_MAP, max_ext_len=0)
    unpacker.feed(memoryview(data)[:MAX_SMALL_MESSAGE])
    try:
        for _ in range(unpacker.read_map_header()):
            if unpacker.unpack() == "type":
                return unpacker.unpack()
            unpacker.skip()
    except Exception:  # cut off within the first bytes, or not a map: no type there
        return None
    return None


class _ObjectBudget:
    """Counts the objects msgpack builds (each map and array with its items) and stops the
    unpacking once there are more than ``limit``, before a bomb of tiny objects fills memory."""

    def __init__(self, limit: int):
        self.left = limit

    def take(self, container: Any) -> Any:
        self.left -= 1 + len(container)
        if self.left < 0:
            raise ProtocolError("bad_message", f"message has more than {MAX_OBJECTS} objects",
                                "send one msgpack map with the fields of its type")
        return container


def _check_depth(message: dict) -> None:
    stack: list[tuple[Any, int]] = [(message, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ProtocolError("bad_message", f"message is nested more than {MAX_DEPTH} levels deep",
                                "send one msgpack map with the fields of its type")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


# --------------------------------------------------------------------------- field checks


def _get(msg: dict, key: str, kind: type | tuple, required: bool = True, default: Any = None) -> Any:
    if key not in msg or msg[key] is None:
        if required:
            raise ProtocolError("bad_field", f"missing field '{key}'")
        return default
    value = msg[key]
    # bool is an int subclass: never accept it where a number is expected, and vice versa
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise ProtocolError("bad_field", f"field '{key}' has type bool, expected {_kind_name(kinds)}")
    if not isinstance(value, kinds):
        raise ProtocolError("bad_field", f"field '{key}' has type {type(value).__name__}, expected {_kind_name(kinds)}")
    return value


def _kind_name(kinds: tuple) -> str:
    return " or ".join(k.__name__ for k in kinds)


def _string(msg: dict, key: str, required: bool = True, default: str | None = None, max_len: int = MAX_STRING) -> Any:
    value = _get(msg, key, str, required, default)
    if value is not None and len(value) > max_len:
        raise ProtocolError("bad_field", f"field '{key}' is longer than {max_len} characters")
    return value


def _int(msg: dict, key: str, lo: int, hi: int, required: bool = True, default: int | None = None) -> Any:
    value = _get(msg, key, int, required, default)
    if value is not None and not lo <= value <= hi:
        raise ProtocolError("bad_field", f"field '{key}' = {value} is outside [{lo}, {hi}]")
    return value


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError("bad_field", f"{what} is not a number")
    if not math.isfinite(value):
        raise ProtocolError("bad_field", f"{what} is not finite")
    return float(value)


_JOB_ID_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_JOB_ID_CHARS = _JOB_ID_FIRST | frozenset("-_.")


def _job_id(msg: dict, key: str = "job_id") -> str:
    # job ids name result files on the daemon's disk: ASCII only, never '.', '..' or a path
    job_id = _string(msg, key, max_len=128)
    if not job_id or job_id[0] not in _JOB_ID_FIRST or not set(job_id) <= _JOB_ID_CHARS:
        raise ProtocolError(
            "bad_field",
            f"{key} must be 1-128 ASCII letters, digits, '-', '_' or '.', starting with a letter or digit",
            "let the client choose the job id (a random hex string)",
        )
    return job_id


def _image(msg: dict, key: str, limits: Limits, channels: int) -> dict[str, Any]:
    img = _get(msg, key, dict)
    width = _int(img, "width", 1, limits.max_image_side)
    height = _int(img, "height", 1, limits.max_image_side)
    if width * height > limits.max_image_pixels:
        raise ProtocolError(
            "too_large",
            f"image of {width}x{height} pixels exceeds the limit of {limits.max_image_pixels} pixels",
            "select a smaller region or scale the image down",
        )
    data = _get(img, "data", (bytes, bytearray))
    if len(data) != width * height * channels:
        raise ProtocolError(
            "bad_image",
            f"image '{key}' has {len(data)} bytes, expected {width}x{height}x{channels} = {width * height * channels}",
        )
    return {"width": width, "height": height, "data": bytes(data)}


def _points(msg: dict, width: int, height: int, limits: Limits) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    raw = _get(msg, "points", list)
    if not raw:
        raise ProtocolError("no_points", "no drag points were given", "add at least one handle -> target pair")
    if len(raw) > limits.max_points:
        raise ProtocolError("too_many_points", f"{len(raw)} point pairs exceed the limit of {limits.max_points}")
    pairs = []
    for i, pair in enumerate(raw):
        if not isinstance(pair, (list, tuple)) or len(pair) != 4:
            raise ProtocolError("bad_points", f"point pair {i + 1} must be [handle_x, handle_y, target_x, target_y]")
        hx, hy, tx, ty = (_finite(v, f"coordinate of point pair {i + 1}") for v in pair)
        for name, x, y in (("handle", hx, hy), ("target", tx, ty)):
            if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
                raise ProtocolError(
                    "point_outside",
                    f"the {name} of point pair {i + 1} ({x:.1f}, {y:.1f}) is outside the {width}x{height} image",
                    "move the point inside the layer",
                )
        if hx == tx and hy == ty:
            raise ProtocolError("bad_points", f"point pair {i + 1} has its target on its handle", "drag the target away from the handle")
        pairs.append(((hx, hy), (tx, ty)))
    return pairs


def _model(msg: dict, field: str = "model") -> str | None:
    """A model (or VAE) source: a hub id, a folder or a .safetensors file; None for the daemon's own."""
    model = _string(msg, field, required=False, default=None, max_len=1024)
    if model is not None and any(ord(c) < 32 for c in model):
        raise ProtocolError("bad_field", f"field '{field}' contains control characters",
                            f"name the {field} by its hub id, folder or .safetensors file")
    return model


def _params(msg: dict) -> dict[str, Any]:
    params = _get(msg, "params", dict, required=False, default={})
    if len(params) > MAX_PARAMS:
        raise ProtocolError("bad_field", f"more than {MAX_PARAMS} parameters")
    for key, value in params.items():
        if not isinstance(key, str) or len(key) > 64:
            raise ProtocolError("bad_field", "parameter names must be strings of at most 64 characters")
        if isinstance(value, float) and not math.isfinite(value):
            raise ProtocolError("bad_param", f"parameter '{key}' is not finite")
        if not isinstance(value, (bool, int, float, str)):
            raise ProtocolError("bad_param", f"parameter '{key}' must be a number, a boolean or a string")
        if isinstance(value, str) and len(value) > MAX_STRING:
            raise ProtocolError("bad_param", f"parameter '{key}' is too long")
    return dict(params)


# --------------------------------------------------------------------------- decoding


def decode_client(data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Decode and validate a client -> daemon message; returns a normalised map."""
    msg = unpack(data, limits)
    return validate_client(msg, limits)


def validate_client(msg: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Validate an unpacked client message; raises ProtocolError on any problem."""
    kind = _check_envelope(msg, CLIENT_TYPES)
    job_id = next((msg[key] for key in ("job_id", "prepare_id") if isinstance(msg.get(key), str)), None)
    try:
        return _VALIDATORS[kind](msg, limits)
    except ProtocolError as err:
        err.job_id = err.job_id or job_id
        raise


def _check_envelope(msg: dict, types: tuple[str, ...]) -> str:
    version = msg.get("v")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProtocolError("bad_message", "message has no protocol version 'v'")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            "version_mismatch",
            f"protocol version {version} is not supported (this side speaks {PROTOCOL_VERSION})",
            "update the DragEdit plug-in and the daemon to the same release (run install.py again)",
        )
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", f"message type is a {type(kind).__name__}, not a string")
    if kind not in types:
        raise ProtocolError("unknown_type", f"unknown message type {kind[:40]!r}")
    return kind


def _hello(msg: dict, limits: Limits) -> dict[str, Any]:
    return {
        "type": "hello",
        "client": _string(msg, "client", max_len=128),
        "client_version": _string(msg, "client_version", max_len=64),
        "editor": _string(msg, "editor", required=False, default="", max_len=128),
        "editor_version": _string(msg, "editor_version", required=False, default="", max_len=64),
    }


def _image_and_mask(msg: dict, limits: Limits) -> tuple[dict[str, Any], dict[str, Any] | None]:
    image = _image(msg, "image", limits, 4)
    mask = None
    if msg.get("mask") is not None:
        mask = _image(msg, "mask", limits, 1)
        if (mask["width"], mask["height"]) != (image["width"], image["height"]):
            raise ProtocolError(
                "bad_mask",
                f"mask is {mask['width']}x{mask['height']} but the image is {image['width']}x{image['height']}",
                "send a mask of the layer's size",
            )
    return image, mask


def _submit(msg: dict, limits: Limits) -> dict[str, Any]:
    job_id = _job_id(msg)
    image, mask = _image_and_mask(msg, limits)
    return {
        "type": "submit",
        "job_id": job_id,
        "method": _string(msg, "method", max_len=64),
        "params": _params(msg),
        "model": _model(msg),
        "vae": _model(msg, "vae"),
        "seed": _int(msg, "seed", 0, 2**63 - 1, required=False, default=None),
        "prompt": _string(msg, "prompt", required=False, default=""),
        "image": image,
        "mask": mask,
        "points": _points(msg, image["width"], image["height"], limits),
        "preview_every": _int(msg, "preview_every", 0, 10000, required=False, default=0),
    }


def _prepare(msg: dict, limits: Limits) -> dict[str, Any]:
    prepare_id = _job_id(msg, "prepare_id")
    image, mask = _image_and_mask(msg, limits)
    return {
        "type": "prepare",
        "prepare_id": prepare_id,
        "method": _string(msg, "method", required=False, default=None, max_len=64),
        "params": _params(msg),
        "model": _model(msg),
        "vae": _model(msg, "vae"),
        "prompt": _string(msg, "prompt", required=False, default=""),
        "image": image,
        "mask": mask,
    }


def _job_only(kind: str):
    def validate(msg: dict, limits: Limits) -> dict[str, Any]:
        return {"type": kind, "job_id": _job_id(msg)}

    return validate


def _empty(kind: str):
    def validate(msg: dict, limits: Limits) -> dict[str, Any]:
        return {"type": kind}

    return validate


_VALIDATORS = {
    "hello": _hello,
    "submit": _submit,
    "prepare": _prepare,
    "cancel": _job_only("cancel"),
    "fetch": _job_only("fetch"),
    "status": _empty("status"),
    "ping": _empty("ping"),
}


def decode_daemon(data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Decode a daemon -> client message: envelope, job id and every image a plug-in will read."""
    msg = unpack(data, limits, LARGE_DAEMON_TYPES)
    kind = _check_envelope(msg, DAEMON_TYPES)
    if kind in ("queued", "progress", "result", "cancelled"):
        _job_id(msg)
    elif kind == "prepared":
        _job_id(msg, "prepare_id")
        if msg.get("state") not in PREPARE_STATES:
            raise ProtocolError("bad_field", f"unknown prepare state {str(msg.get('state'))[:40]!r}")
    if kind == "result":
        _image(msg, "image", limits, 4)
    elif kind == "progress" and msg.get("preview") is not None:
        _image(msg, "preview", limits, 3)
    elif kind == "error":
        _string(msg, "code", max_len=64)
        _string(msg, "message")
    elif kind in ("welcome", "status") and msg.get("loading") is not None:
        try:
            _loading(msg["loading"])
        except ProtocolError:  # not worth refusing the daemon for: the plug-in just says "loading"
            msg["loading"] = None
    return msg


def _loading(loading: Any) -> None:
    """The ``loading`` field of welcome and status: a hub model's download progress while it loads,
    ``{"bytes_done": int, "bytes_total": int | None, "eta_s": float | None, "file": str | None}``."""
    if not isinstance(loading, dict):
        raise ProtocolError("bad_field", "field 'loading' is not a map")
    _int(loading, "bytes_done", 0, 2**62)
    _int(loading, "bytes_total", 0, 2**62, required=False)
    if loading.get("eta_s") is not None and _finite(loading["eta_s"], "field 'eta_s'") < 0:
        raise ProtocolError("bad_field", "field 'eta_s' is negative")
    _string(loading, "file", required=False)


def download_words(loading: dict[str, Any]) -> str:
    """A download's progress in words (from a checked ``loading`` field): '1.2 of 4.3 GB, about 3 min
    left', or '1.2 GB so far' while its size is not known."""
    done, total, eta = loading["bytes_done"], loading.get("bytes_total"), loading.get("eta_s")
    if total is None:
        return f"{_amount(done, done)} so far"
    words = f"{_amount(done, total, unit=False)} of {_amount(total, total)}"
    if eta is None:
        return words
    if eta < 60:
        return f"{words}, less than a minute left"
    if eta < 90 * 60:
        return f"{words}, about {round(eta / 60)} min left"
    return f"{words}, about {eta / 3600:.1f} h left"


def _amount(size: int, scale: int, unit: bool = True) -> str:
    """``size`` bytes in the unit that suits ``scale``: GB with one decimal, else whole MB."""
    text = f"{size / 1e9:.1f} GB" if scale >= 1e9 else f"{size / 1e6:.0f} MB"
    return text if unit else text.split()[0]


# --------------------------------------------------------------------------- builders


def hello(client: str, client_version: str, editor: str = "", editor_version: str = "") -> dict[str, Any]:
    return {"type": "hello", "client": client, "client_version": client_version, "editor": editor, "editor_version": editor_version}


def submit(
    job_id: str,
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
    vae: str | None = None,
) -> dict[str, Any]:
    """Build a submit message; ``points`` are (handle_x, handle_y, target_x, target_y) in image pixels.

    ``model`` / ``vae``: None for the daemon's own, else a hub id, a folder or a .safetensors file."""
    return {
        "type": "submit",
        "job_id": job_id,
        "method": method,
        "params": dict(params or {}),
        "model": model,
        "vae": vae,
        "seed": seed,
        "prompt": prompt,
        "image": image(width, height, rgba),
        "mask": None if mask is None else image(width, height, mask),
        "points": [list(map(float, p)) for p in points],
        "preview_every": preview_every,
    }


def prepare(
    prepare_id: str,
    rgba: bytes,
    width: int,
    height: int,
    mask: bytes | None = None,
    method: str | None = None,
    params: dict[str, Any] | None = None,
    model: str | None = None,
    prompt: str = "",
    vae: str | None = None,
) -> dict[str, Any]:
    """Ask the daemon to get an image ready for dragging (its RecLoRA and inversion) before the drag.

    Send the image, mask, model and prompt the drag will send, and the method and its parameters
    (``method`` None: every method's defaults), so that the drag finds them in the caches."""
    return {
        "type": "prepare",
        "prepare_id": prepare_id,
        "method": method,
        "params": dict(params or {}),
        "model": model,
        "vae": vae,
        "prompt": prompt,
        "image": image(width, height, rgba),
        "mask": None if mask is None else image(width, height, mask),
    }


def prepared(prepare_id: str, state: str, step: int = 0, total: int = 0, eta_s: float | None = None,
             cached: dict[str, bool] | None = None, error: dict[str, str] | None = None) -> dict[str, Any]:
    """Where a prepare stands (PREPARE_STATES); ``step`` / ``total`` count its LoRA and inversion steps,
    ``cached`` says what was already there when it ran, ``error`` (code, message, hint) why it failed."""
    return {"type": "prepared", "prepare_id": prepare_id, "state": state, "step": step, "total": total,
            "eta_s": eta_s, "cached": dict(cached or {}), "error": error}


def cancel(job_id: str) -> dict[str, Any]:
    return {"type": "cancel", "job_id": job_id}


def fetch(job_id: str) -> dict[str, Any]:
    """Ask for a job's outcome again (after a reconnect): the stored result, or its queue position."""
    return {"type": "fetch", "job_id": job_id}


def status_request() -> dict[str, Any]:
    return {"type": "status"}


def ping() -> dict[str, Any]:
    return {"type": "ping"}


def pong(instance: str) -> dict[str, Any]:
    """Heartbeat reply; ``instance`` changes when the daemon restarts."""
    return {"type": "pong", "instance": instance}


def queued(job_id: str, position: int) -> dict[str, Any]:
    """``position``: 1 = runs next, 0 = running now."""
    return {"type": "queued", "job_id": job_id, "position": position}


def image(width: int, height: int, data: bytes) -> dict[str, Any]:
    return {"width": width, "height": height, "data": bytes(data)}


def progress(
    job_id: str,
    phase: str,
    step: int,
    total: int,
    eta_s: float | None = None,
    cached: bool = False,
    preview: dict[str, Any] | None = None,
    handles: list[tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """A progress report; ``preview`` is a small RGB image map, ``handles`` the current handle positions."""
    return {
        "type": "progress",
        "job_id": job_id,
        "phase": phase,
        "step": step,
        "total": total,
        "eta_s": eta_s,
        "cached": cached,
        "preview": preview,
        "handles": None if handles is None else [[float(x), float(y)] for x, y in handles],
    }


def result(
    job_id: str,
    rgba: bytes,
    width: int,
    height: int,
    handles: list[tuple[float, float]],
    timings: dict[str, float],
    seed: int,
    cache_hits: dict[str, bool],
    stats: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The edited RGBA image at the input size with the final handles, per-phase timings and seed."""
    return {
        "type": "result",
        "job_id": job_id,
        "image": image(width, height, rgba),
        "handles": [[float(x), float(y)] for x, y in handles],
        "timings": dict(timings),
        "seed": seed,
        "cache_hits": dict(cache_hits),
        "stats": dict(stats or {}),
    }


def cancelled(job_id: str) -> dict[str, Any]:
    return {"type": "cancelled", "job_id": job_id}


def error(code: str, message: str, hint: str = "", job_id: str | None = None) -> dict[str, Any]:
    return {"type": "error", "job_id": job_id, "code": code, "message": message[:MAX_STRING], "hint": hint[:MAX_STRING]}


def from_exception(err: ProtocolError) -> dict[str, Any]:
    return error(err.code, err.message, err.hint, err.job_id)
