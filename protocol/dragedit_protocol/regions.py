"""The editable region of a drag without a selection, defined once for the plug-ins, the CLI and the daemon.

The authors' demos send an all-zero mask when the user paints none (nothing may change, so GoodDrag's
handles never move and DragLoRA's latent adaptation changes nothing), and editing the whole image
lets DragLoRA's adaptation rework everything. DragEdit instead edits a box around the drag:

    the smallest box holding every handle and target, grown on each side by
    margin = max(MARGIN_FRACTION x the image's short side, the longest drag), clipped to the image.

So the content a handle grabs (usually an object about as large as the drag is long) and the place it
goes may change, and the rest of the image stays as it was. Pure Python (no numpy): the editors'
Python may not have it.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

MARGIN_FRACTION = 0.25  # of the image's short side: 32 px on a 128 px toy image, 128 px on a 512 px photo

Box = tuple[int, int, int, int]  # x0, y0 (inclusive), x1, y1 (exclusive), in image pixels


def _pairs(points: Iterable[Sequence]) -> list[tuple[float, float, float, float]]:
    """Points as (handle_x, handle_y, target_x, target_y), from that form or ((hx, hy), (tx, ty))."""
    out = []
    for point in points:
        if len(point) == 2:
            (hx, hy), (tx, ty) = point
        elif len(point) == 4:
            hx, hy, tx, ty = point
        else:
            raise ValueError(f"a drag point must be (hx, hy, tx, ty) or ((hx, hy), (tx, ty)), got {point!r}")
        out.append((float(hx), float(hy), float(tx), float(ty)))
    if not out:
        raise ValueError("no drag points: the default editable region is the area around the points")
    return out


def region_box_around_points(points: Iterable[Sequence], width: int, height: int,
                             margin_fraction: float = MARGIN_FRACTION) -> Box:
    """The default editable box (x0, y0, x1, y1) for a drag without a selection (rule in the module doc).

    ``points``: (handle_x, handle_y, target_x, target_y) or ((hx, hy), (tx, ty)) in pixel-index
    coordinates of a ``width`` x ``height`` image.
    """
    if width < 1 or height < 1:
        raise ValueError(f"the image must be at least 1x1 pixels, got {width}x{height}")
    pairs = _pairs(points)
    xs = [v for hx, _, tx, _ in pairs for v in (hx, tx)]
    ys = [v for _, hy, _, ty in pairs for v in (hy, ty)]
    longest = max(math.hypot(tx - hx, ty - hy) for hx, hy, tx, ty in pairs)
    margin = max(margin_fraction * min(width, height), longest)
    x0 = max(0, math.floor(min(xs) - margin))
    y0 = max(0, math.floor(min(ys) - margin))
    x1 = min(width, math.floor(max(xs) + margin) + 1)
    y1 = min(height, math.floor(max(ys) + margin) + 1)
    if x0 >= x1 or y0 >= y1:
        raise ValueError(f"the drag points lie outside the {width}x{height} image")
    return x0, y0, x1, y1


def box_mask(box: Box, width: int, height: int) -> bytes:
    """A one-byte-per-pixel mask (row-major, ``width`` x ``height``): 255 inside the box, 0 outside."""
    x0, y0, x1, y1 = box
    row = bytes(x0) + b"\xff" * (x1 - x0) + bytes(width - x1)
    empty = bytes(width)
    return empty * y0 + row * (y1 - y0) + empty * (height - y1)


def region_around_points(points: Iterable[Sequence], width: int, height: int,
                         margin_fraction: float = MARGIN_FRACTION) -> bytes:
    """The default editable region as a mask (255 = may change) for a drag without a selection."""
    return box_mask(region_box_around_points(points, width, height, margin_fraction), width, height)
