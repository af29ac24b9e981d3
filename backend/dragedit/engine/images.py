"""Any image, any size: crop a working region, scale it to the model's size, paste the result back.

The region is the box around the editable mask and the points, grown by a context margin (and to
at least the working size where the image allows), scaled so its short side is the working size
(sides multiples of what the model needs). The result comes back sharp: where the edit changed
nothing, the input's own full-resolution detail is kept (only the edit's low-resolution change is
scaled up and added), and only where content changed does the scaled-up model image show. It is
blended in with weights that are 1 inside the mask and fall to 0 over ``feather`` pixels outside it:
pixels outside the mask dilated by the feather are bit-identical to the input.

Two masks come from the user's selection (as in the authors' code for the first): the drag's
editable region is every selected pixel (> 0), carried to the working size by "any selected pixel
covers it" and to the latent by nearest-neighbour sampling twice (half size, then latent size), so
the drag sees a binary mask; the paste blends in where the selection is at least half selected
(>= 128), feathered. A request without a selection gets the default region around the points
(``dragedit_protocol.regions``), the same one the plug-ins and the CLI send.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from dragedit_protocol.regions import region_around_points

from .api import EditError

MAX_ASPECT = 2.0  # the long side of the working image is at most this many short sides
# How far (0..255, largest channel) the edited working image may differ from the model's own
# reconstruction of the input and still count as unchanged (the input's fine detail kept in full);
# from CHANGED on, the model's content replaces it (scaled up); a linear mix in between.
UNCHANGED, CHANGED = 6.0, 24.0
# The difference is averaged over this many working pixels around each one first: a change is an area,
# not a speck, and one rounding flip in the model's output cannot swing the result by many levels.
CHANGE_RADIUS = 2


@dataclass(frozen=True)
class Region:
    """A box of the full image (x0, y0 inclusive; x1, y1 exclusive) and the working size it maps to."""

    x0: int
    y0: int
    x1: int
    y1: int
    work_w: int
    work_h: int

    @property
    def scale(self) -> tuple[float, float]:
        return self.work_w / (self.x1 - self.x0), self.work_h / (self.y1 - self.y0)

    def to_work(self, points: np.ndarray) -> np.ndarray:
        sx, sy = self.scale
        return (points - np.array([self.x0, self.y0], dtype=np.float64)) * np.array([sx, sy])

    def to_image(self, points: np.ndarray) -> np.ndarray:
        sx, sy = self.scale
        return points / np.array([sx, sy]) + np.array([self.x0, self.y0], dtype=np.float64)


def check_image_and_mask(image: np.ndarray, mask: np.ndarray | None) -> None:
    """Validate a full-size image (H x W x 4 uint8) and its optional selection (H x W, not empty)."""
    if image.ndim != 3 or image.shape[2] != 4 or image.dtype != np.uint8:
        raise EditError("bad_image", f"the image must be H x W x 4 uint8 RGBA, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    if mask is not None:
        if mask.shape != (height, width):
            raise EditError("bad_mask", f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is {width}x{height}",
                            "use a selection of the layer's size")
        if not (mask > 127).any():
            raise EditError("empty_mask", "the selection (editable region) is empty",
                            "select the region that may change, or select nothing to edit the area around the points")


def check_inputs(image: np.ndarray, mask: np.ndarray | None, points: list) -> np.ndarray:
    """Validate a full-size request; returns the selection as H x W uint8 (0 = keep, > 0 = may change).

    Without a mask it is the default region around the points (255 inside, 0 outside).
    """
    check_image_and_mask(image, mask)
    height, width = image.shape[:2]
    if not points:
        raise EditError("no_points", "no drag points were given", "add at least one handle -> target pair")
    for i, (handle, target) in enumerate(points):
        for name, (x, y) in (("handle", handle), ("target", target)):
            if not (np.isfinite(x) and np.isfinite(y) and 0 <= x <= width - 1 and 0 <= y <= height - 1):
                raise EditError("point_outside", f"the {name} of point pair {i + 1} ({x}, {y}) is outside the {width}x{height} image",
                                "move the point inside the layer")
        if tuple(handle) == tuple(target):
            raise EditError("bad_points", f"point pair {i + 1} has its target on its handle", "drag the target away from the handle")
    if mask is None:
        return np.frombuffer(region_around_points(points, width, height), np.uint8).reshape(height, width)
    return mask


def plan_region(editable: np.ndarray, points: np.ndarray, work_size: int, multiple: int, feather: int,
                margin_fraction: float = 0.25, min_margin: int = 16) -> Region:
    """Choose the box to work on and its working size.

    With the whole image editable the region is the whole image. Otherwise it is the mask's box grown
    by max(min_margin, feather, margin_fraction x box size), clipped to the image; it grows further
    when a point lies outside it (``points`` may be empty: a prepare, before any), and to at least the working size where the image allows (more
    context rather than scaling content up beyond the model's native scale). So moving points inside
    the region keeps the same crop, and a repeated drag of the same layer and selection finds its
    RecLoRA and inversion in the caches.
    """
    height, width = editable.shape
    if editable.all():
        x0, y0, x1, y1 = 0, 0, width, height
    else:
        ys, xs = np.nonzero(editable)
        bx0, by0, bx1, by1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        margin = max(min_margin, feather, int(margin_fraction * max(bx1 - bx0, by1 - by0)))
        x0, y0 = max(0, int(bx0) - margin), max(0, int(by0) - margin)
        x1, y1 = min(width, int(bx1) + margin), min(height, int(by1) + margin)
        px0, py0 = points.min(axis=0) if len(points) else (x0, y0)
        px1, py1 = points.max(axis=0) + 1 if len(points) else (x1, y1)
        if px0 < x0 or py0 < y0 or px1 > x1 or py1 > y1:
            x0, y0 = max(0, min(x0, int(np.floor(px0)) - min_margin)), max(0, min(y0, int(np.floor(py0)) - min_margin))
            x1, y1 = min(width, max(x1, int(np.ceil(px1)) + min_margin)), min(height, max(y1, int(np.ceil(py1)) + min_margin))
        # a box smaller than the working size takes more context instead of being scaled up, so
        # content keeps the scale the model knows (and the model sees more of its surroundings)
        x0, x1 = _grow(x0, x1, max(0, work_size - (x1 - x0)), width)
        y0, y1 = _grow(y0, y1, max(0, work_size - (y1 - y0)), height)
        x0, y0, x1, y1 = _limit_aspect(x0, y0, x1, y1, width, height)
    rw, rh = x1 - x0, y1 - y0
    scale = work_size / min(rw, rh)
    if max(rw, rh) * scale > MAX_ASPECT * work_size:
        scale = MAX_ASPECT * work_size / max(rw, rh)
    work_w = max(multiple, int(round(rw * scale / multiple)) * multiple)
    work_h = max(multiple, int(round(rh * scale / multiple)) * multiple)
    return Region(x0, y0, x1, y1, work_w, work_h)


def _limit_aspect(x0: int, y0: int, x1: int, y1: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Grow the short side of a thin box (where the image allows) so the aspect stays within MAX_ASPECT."""
    rw, rh = x1 - x0, y1 - y0
    if rw > MAX_ASPECT * rh:
        grow = int(np.ceil(rw / MAX_ASPECT)) - rh
        y0, y1 = _grow(y0, y1, grow, height)
    elif rh > MAX_ASPECT * rw:
        grow = int(np.ceil(rh / MAX_ASPECT)) - rw
        x0, x1 = _grow(x0, x1, grow, width)
    return x0, y0, x1, y1


def _grow(lo: int, hi: int, amount: int, limit: int) -> tuple[int, int]:
    lo -= amount // 2
    hi += amount - amount // 2
    if lo < 0:
        hi, lo = hi - lo, 0
    if hi > limit:
        lo, hi = max(0, lo - (hi - limit)), limit
    return lo, hi


def crop_to_work(image: np.ndarray, region: Region) -> np.ndarray:
    """The region's RGB pixels scaled to the working size: work_h x work_w x 3 uint8."""
    crop = Image.fromarray(np.ascontiguousarray(image[region.y0:region.y1, region.x0:region.x1, :3]))
    return np.asarray(crop.resize((region.work_w, region.work_h), Image.Resampling.LANCZOS))


def mask_to_work(editable: np.ndarray, region: Region) -> np.ndarray:
    """The editable mask (bool) over the region at working size: a working pixel is editable when
    any editable image pixel falls in it (area coverage > 0, so a thin selection is not lost)."""
    crop = Image.fromarray(editable[region.y0:region.y1, region.x0:region.x1].astype(np.uint8) * 255)
    return np.asarray(crop.resize((region.work_w, region.work_h), Image.Resampling.BOX)) > 0


def mask_to_latent(work_mask: np.ndarray, latent_size: tuple[int, int]) -> torch.Tensor:
    """The working-size mask at latent size as the authors sample it: nearest-neighbour to half the
    working size (the supervision resolution), then nearest-neighbour to the latent. 1 x 1 x h x w, 0/1.

    Raises EditError when no editable latent pixel is left (a selection thinner than the sampling step).
    """
    mask = torch.from_numpy(np.ascontiguousarray(work_mask)).float()[None, None]
    half = F.interpolate(mask, size=(work_mask.shape[0] // 2, work_mask.shape[1] // 2), mode="nearest")
    latent = F.interpolate(half, size=tuple(latent_size), mode="nearest")
    if not bool(latent.any()):
        raise EditError("mask_too_small", "the selection is too thin to edit at the model's working resolution",
                        "select a larger region around what should move")
    return latent


def blend_weights(editable: np.ndarray, feather: int) -> np.ndarray:
    """1 inside the mask, falling smoothly to 0 within ``feather`` pixels outside it, 0 beyond."""
    inside = editable.astype(np.float32)
    if feather <= 0:
        return inside
    mask_img = Image.fromarray(editable.astype(np.uint8) * 255)
    dilated = mask_img.filter(ImageFilter.MaxFilter(2 * feather + 1))
    soft = np.asarray(dilated.filter(ImageFilter.GaussianBlur(feather / 2)), dtype=np.float32) / 255.0
    soft *= np.asarray(dilated, dtype=np.float32) / 255.0
    return np.maximum(inside, soft)


def _scaled(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """An H x W x 3 uint8 image scaled to width x height (Lanczos), as float32."""
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32)


def scaled_to_region(work_rgb: np.ndarray, region: Region) -> np.ndarray:
    """The working image scaled back to the region's size: what the model made, before any paste."""
    return _scaled(work_rgb, region.x1 - region.x0, region.y1 - region.y0)


def _box_mean(values: np.ndarray, radius: int) -> np.ndarray:
    """The mean of a 2-D array over the (2 radius + 1)^2 square around each element (edges repeated)."""
    k = 2 * radius + 1
    sums = np.pad(np.pad(values, radius, mode="edge"), ((1, 0), (1, 0))).cumsum(axis=0).cumsum(axis=1)
    return (sums[k:, k:] - sums[:-k, k:] - sums[k:, :-k] + sums[:-k, :-k]) / (k * k)


def sharp_result(source: np.ndarray, edited_work: np.ndarray, reference_work: np.ndarray) -> np.ndarray:
    """The edited region at full resolution, as sharp as the source wherever the edit changed nothing.

    source: the region's full-size RGB; edited_work: the model's edited image at the working size;
    reference_work: the model's reconstruction of the unedited input at that size (its VAE round
    trip), so the model's own loss of detail cancels out. Where the two working images agree (their
    difference averaged over CHANGE_RADIUS working pixels), the result is the source plus their
    scaled-up difference (the source's fine detail kept in full); where they differ by CHANGED or more, it is the scaled-up edited image (no ghost of the old
    content's detail); a linear mix in between. Returns H x W x 3 float32 (not clipped).
    """
    height, width = source.shape[:2]
    edited, reference = _scaled(edited_work, width, height), _scaled(reference_work, width, height)
    difference = np.abs(edited_work.astype(np.float32) - reference_work.astype(np.float32)).max(axis=-1)
    change = _box_mean(difference, CHANGE_RADIUS)
    keep_work = np.clip((CHANGED - change) / (CHANGED - UNCHANGED), 0.0, 1.0)
    keep_image = Image.fromarray(keep_work.astype(np.float32)).resize((width, height), Image.Resampling.BILINEAR)
    keep = np.asarray(keep_image, dtype=np.float32)[..., None]
    return edited + keep * (source.astype(np.float32) - reference)


def paste(image: np.ndarray, editable: np.ndarray, region: Region, edited_work: np.ndarray,
          reference_work: np.ndarray, feather: int) -> np.ndarray:
    """Bring the edited working image back to full size (see ``sharp_result``) and blend it into a copy
    of the full image through the mask and its feather (alpha kept)."""
    out = image.copy()
    src = image[region.y0:region.y1, region.x0:region.x1, :3].astype(np.float32)
    edited = sharp_result(image[region.y0:region.y1, region.x0:region.x1, :3], edited_work, reference_work)
    # Weights are computed on the region grown by the feather so the blur sees the mask's true edge.
    pad = max(feather, 0) + 1
    gx0, gy0 = max(0, region.x0 - pad), max(0, region.y0 - pad)
    gx1, gy1 = min(image.shape[1], region.x1 + pad), min(image.shape[0], region.y1 + pad)
    weights = blend_weights(editable[gy0:gy1, gx0:gx1], feather)
    w = weights[region.y0 - gy0:region.y1 - gy0, region.x0 - gx0:region.x1 - gx0, None]
    blended = np.clip(np.rint(src * (1 - w) + edited * w), 0, 255).astype(np.uint8)
    changed = w[..., 0] > 0
    region_view = out[region.y0:region.y1, region.x0:region.x1, :3]
    region_view[changed] = blended[changed]
    return out
