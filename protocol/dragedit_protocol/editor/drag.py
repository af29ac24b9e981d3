"""Crop and paste maths of one drag: what part of the layer goes to the daemon, and how the
edited pixels come back into a layer of the source's size.

With a selection, only the selection's bounding box plus a margin of context (grown further only
for points outside it) is sent, so the model spends its resolution where the edit happens; the
result is blended back through the selection mask, so pixels outside the selection stay exactly
the source's.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import UserError
from .geometry import PointPair, Rect, check_pairs_inside
from .pixels import blend, crop, mask_bounds, paste

CONTEXT = 0.5        # margin around the edited area, as a fraction of its longer side
MIN_CONTEXT_PX = 32  # and at least this many pixels


@dataclass(frozen=True)
class DragPlan:
    """The request for one drag and where its result goes.

    layer: the source pixels' rectangle in image coordinates; region: the part sent to the
    daemon, relative to the layer; rgba/mask: that region's pixels and mask (None: all
    editable); points: (hx, hy, tx, ty) pixel-index coordinates inside the region.
    """

    layer: Rect
    region: Rect
    rgba: bytes
    mask: bytes | None
    points: list[tuple[float, float, float, float]]


def plan_drag(rgba: bytes, layer: Rect, pairs: list[PointPair], mask: bytes | None = None,
              context: float = CONTEXT) -> DragPlan:
    """Choose and cut the region to send; ``pairs`` are in image coordinates, ``mask`` is layer-sized."""
    if len(rgba) != layer.width * layer.height * 4:
        raise ValueError(f"layer pixels have {len(rgba)} bytes, expected {layer.width}x{layer.height}x4")
    check_pairs_inside(pairs, layer)
    local = [p.translated(-layer.x, -layer.y) for p in pairs]
    whole = Rect(0, 0, layer.width, layer.height)
    region = whole
    if mask is not None:
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
    region_mask = None if mask is None else crop(mask, layer.width, 1, region)
    return DragPlan(layer, region, crop(rgba, layer.width, 4, region), region_mask, points)


def compose_result(plan: DragPlan, source_rgba: bytes, result: dict) -> bytes:
    """The layer-sized RGBA of the new layer: the source with the edited region blended in.

    ``result`` is the daemon's image map {width, height, data}.
    """
    if (result["width"], result["height"]) != (plan.region.width, plan.region.height):
        raise UserError(f"The daemon returned a {result['width']}x{result['height']} image for a "
                        f"{plan.region.width}x{plan.region.height} region",
                        "update the daemon and the plug-in to the same release (run install.py again)")
    edited = bytes(result["data"])
    if plan.mask is not None:
        edited = blend(crop(source_rgba, plan.layer.width, 4, plan.region), edited, plan.mask)
    out = bytearray(source_rgba)
    paste(out, plan.layer.width, 4, edited, plan.region)
    return bytes(out)
