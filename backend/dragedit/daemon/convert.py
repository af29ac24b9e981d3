"""Conversions between wire messages and the engine's DragRequest / PrepareRequest / Progress / DragResult."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from dragedit_protocol import messages

from ..engine.api import DragRequest, DragResult, PrepareRequest, Progress
from ..methods.base import MethodSpec, Param


def _image_and_mask(message: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    image = message["image"]
    rgba = np.frombuffer(image["data"], dtype=np.uint8).reshape(image["height"], image["width"], 4).copy()
    mask = None
    if message.get("mask") is not None:
        m = message["mask"]
        mask = np.frombuffer(m["data"], dtype=np.uint8).reshape(m["height"], m["width"]).copy()
    return rgba, mask


def to_prepare_request(prepare: dict[str, Any]) -> PrepareRequest:
    """A validated prepare message as an engine request (its model already checked by the policy)."""
    rgba, mask = _image_and_mask(prepare)
    return PrepareRequest(image=rgba, mask=mask, method=prepare.get("method"), params=dict(prepare["params"]),
                          prompt=prepare.get("prompt") or "", model=prepare.get("model"), vae=prepare.get("vae"))


def to_request(submit: dict[str, Any]) -> DragRequest:
    """A validated submit message as an engine request (its model already checked by the policy)."""
    rgba, mask = _image_and_mask(submit)
    return DragRequest(
        image=rgba,
        points=[((hx, hy), (tx, ty)) for (hx, hy), (tx, ty) in submit["points"]],
        method=submit["method"],
        params=dict(submit["params"]),
        mask=mask,
        seed=submit.get("seed"),
        prompt=submit.get("prompt") or "",
        model=submit.get("model"),
        vae=submit.get("vae"),
        preview_every=submit.get("preview_every") or 0,
    )


def progress_message(job_id: str, progress: Progress) -> dict[str, Any]:
    preview = None
    if progress.preview is not None:
        rgb = np.ascontiguousarray(progress.preview[..., :3], dtype=np.uint8)
        preview = messages.image(rgb.shape[1], rgb.shape[0], rgb.tobytes())
    eta = progress.eta_s if progress.eta_s is not None and math.isfinite(progress.eta_s) else None
    return messages.progress(job_id, progress.phase, int(progress.step), int(progress.total), eta,
                             bool(progress.cached), preview, progress.handles)


def result_message(job_id: str, result: DragResult) -> dict[str, Any]:
    rgba = np.ascontiguousarray(result.image, dtype=np.uint8)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"the engine returned an image of shape {rgba.shape}, expected H x W x 4")
    return messages.result(
        job_id, rgba.tobytes(), rgba.shape[1], rgba.shape[0], result.handles,
        {str(k): float(v) for k, v in result.timings.items()},
        int(result.seed), {str(k): bool(v) for k, v in result.cache_hits.items()}, plain(result.stats))


def plain(value: Any) -> Any:
    """``value`` with numpy scalars, tuples and other objects turned into msgpack-friendly types."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    return str(value)


def method_specs(description: dict[str, Any]) -> dict[str, MethodSpec]:
    """The method schemas of ``Engine.describe()`` rebuilt as MethodSpec, to check submits early."""
    specs = {}
    for method in description.get("methods") or []:
        params = tuple(
            Param(name=p["name"], type=p["type"], default=p.get("default"), description=p.get("description", ""),
                  min=p.get("min"), max=p.get("max"), choices=tuple(p.get("choices") or ()),
                  advanced=p.get("advanced", True))
            for p in method.get("params") or [])
        specs[method["name"]] = MethodSpec(method["name"], method.get("title", method["name"]),
                                           method.get("description", ""), params)
    return specs
