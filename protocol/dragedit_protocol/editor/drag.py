"""Crop and paste maths of one drag: what part of the layer goes to the daemon, and how the
edited pixels come back as a layer over that region.

Only the editable area's bounding box plus a margin of context (grown further only for points
outside it) is sent, so the model spends its resolution where the edit happens; the result is
blended back through the mask, so pixels outside the editable area stay exactly the source's.
The editable area is the selection, or without one the area around the points.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..regions import region_around_points
from .errors import UserError
from .geometry import PointPair, Rect, check_pairs_inside
from .pixels import blend, crop, mask_bounds

CONTEXT = 0.5        # margin around the edited area, as a fraction of its longer side
MIN_CONTEXT_PX = 32  # and at least this many pixels
SOFT_EDGE_PX = 8     # default "Soft edge" of both plug-ins: the result fades into the source over this width


@dataclass(frozen=True)
class DragPlan:
    """The request for one drag and where its result goes.

    layer: the source pixels' rectangle in image coordinates; region: the part sent to the
    daemon, relative to the layer; rgba/mask: that region's pixels and editable mask (always
    explicit: without a selection, the area around the points, see dragedit_protocol.regions);
    points: (hx, hy, tx, ty) pixel-index coordinates inside the region.
    """

    layer: Rect
    region: Rect
    rgba: bytes
    mask: bytes
    points: list[tuple[float, float, float, float]]


@dataclass(frozen=True)
class DragRequest:
    """What a drag sends about its image: the plan's region and mask, the method and its
    parameters, the model, vae and prompt. A prepare sends exactly the same (``image_fields``),
    so the daemon's caches made by the prepare serve the drag."""

    plan: DragPlan
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    prompt: str = ""
    vae: str | None = None

    def image_fields(self) -> dict[str, Any]:
        """The keyword arguments that ``DaemonClient.submit`` and ``DaemonClient.prepare`` both take."""
        plan = self.plan
        return {"rgba": plan.rgba, "width": plan.region.width, "height": plan.region.height, "mask": plan.mask,
                "method": self.method, "params": dict(self.params), "model": self.model, "prompt": self.prompt,
                "vae": self.vae}


def plan_drag(rgba: bytes, layer: Rect, pairs: list[PointPair], mask: bytes | None = None,
              context: float = CONTEXT) -> DragPlan:
    """Choose and cut the region to send; ``pairs`` are in image coordinates, ``mask`` is layer-sized
    (None: no selection, so the area around the points may change)."""
    if len(rgba) != layer.width * layer.height * 4:
        raise ValueError(f"layer pixels have {len(rgba)} bytes, expected {layer.width}x{layer.height}x4")
    check_pairs_inside(pairs, layer)
    local = [p.translated(-layer.x, -layer.y) for p in pairs]
    whole = Rect(0, 0, layer.width, layer.height)
    if mask is None:
        mask = region_around_points([p.to_index(layer.width, layer.height) for p in local], layer.width, layer.height)
    bounds = mask_bounds(mask, layer.width, layer.height)
    if bounds is None:
        raise UserError("The selection is empty", "select the region that may change, or deselect all")
    margin = max(MIN_CONTEXT_PX, round(context * max(bounds.width, bounds.height)))
    region = bounds.expanded(margin).intersect(whole)
    # Grow only for points outside: moving points inside keeps the same region, so the daemon's
    # caches (keyed by the pixels sent) serve the next drag of the same layer and selection.
    outside = [p for p in local if not (region.contains(p.handle) and region.contains(p.target))]
    for p in outside:
        region = region.union(Rect.around([p.handle, p.target]).expanded(MIN_CONTEXT_PX)).intersect(whole)
    points = [p.translated(-region.x, -region.y).to_index(region.width, region.height) for p in local]
    return DragPlan(layer, region, crop(rgba, layer.width, 4, region), crop(mask, layer.width, 1, region), points)


def compose_result(plan: DragPlan, source_rgba: bytes, result: dict) -> tuple[Rect, bytes]:
    """The new layer's content: the edited region blended into the source through the mask.

    Returns the region's rectangle in image coordinates and its RGBA pixels: the result layer
    holds only that region (over the source), not a full-size copy of the layer.
    ``result`` is the daemon's image map {width, height, data}.
    """
    if (result["width"], result["height"]) != (plan.region.width, plan.region.height):
        raise UserError(f"The daemon returned a {result['width']}x{result['height']} image for a "
                        f"{plan.region.width}x{plan.region.height} region",
                        "update the daemon and the plug-in to the same release (run install.py again)")
    edited = blend(crop(source_rgba, plan.layer.width, 4, plan.region), bytes(result["data"]), plan.mask)
    return plan.region.translated(plan.layer.x, plan.layer.y), edited
