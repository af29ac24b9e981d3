"""Where did the handle content go? Ground-truth measurements of a drag result on a toy case.

Objects are found in the output by colour (each case's objects have saturated colours far from the
muted background and from each other), never with a method's own point tracker:
- a moved object's handle ends at handle + (centroid in the output - centroid in the input);
- a stretched side's handle ends at handle + (how far the object's extreme along the drag direction
  moved) x direction.
An object that (mostly) vanished counts as not moved.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .cases import DragCase
from .scenes import render

SUCCESS_PX = 4.0  # a point succeeded when its content ends within this many pixels of its target
LOST_FRACTION = 0.2  # fewer object pixels than this share of the input's: the object is gone


@dataclass(frozen=True)
class CaseScore:
    """The ground-truth numbers of one drag result."""

    final_handles: list[tuple[float, float]]
    distances_px: list[float]  # final handle content to target
    initial_distances_px: list[float]  # handle to target
    moved_fraction: float  # mean over points of 1 - distance / initial distance
    psnr_outside_db: float  # against the input, outside the editable region
    success: bool  # every point within SUCCESS_PX of its target

    @property
    def mean_distance_px(self) -> float:
        return float(np.mean(self.distances_px))


class ColourModel:
    """Pixels of one object, told apart by their distance to its mean colour in the input."""

    def __init__(self, rgb: np.ndarray, coverage: np.ndarray):
        inside = coverage > 0.95
        if inside.sum() < 10:
            raise ValueError("the object is too small or hidden to be measured")
        colours = rgb[inside].astype(np.float32)
        self.mean = colours.mean(axis=0)
        spread = np.percentile(np.linalg.norm(colours - self.mean, axis=1), 95)
        outside = rgb[coverage < 0.05].astype(np.float32)
        nearest_other = np.percentile(np.linalg.norm(outside - self.mean, axis=1), 0.5)
        if nearest_other <= spread:
            raise ValueError("the object's colour cannot be told apart from the rest of the image")
        self.threshold = float((spread + nearest_other) / 2)

    def pixels(self, rgb: np.ndarray) -> np.ndarray:
        """Bool H x W: pixels of this object's colour."""
        return np.linalg.norm(rgb[..., :3].astype(np.float32) - self.mean, axis=-1) < self.threshold


def _centroid(region: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(region)
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])


def _extreme(region: np.ndarray, direction: np.ndarray) -> float:
    ys, xs = np.nonzero(region)
    return float(np.percentile((xs + 0.5) * direction[0] + (ys + 0.5) * direction[1], 99))


def psnr_db(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    """PSNR of the RGB channels of a and b over the pixels `where` (inf when identical)."""
    diff = a[..., :3][where].astype(np.float64) - b[..., :3][where].astype(np.float64)
    mse = float(np.mean(diff ** 2)) if diff.size else 0.0
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def score_case(case: DragCase, output: np.ndarray) -> CaseScore:
    """Score an output image (H x W x 3 or 4 uint8, the case's size) against the case's ground truth."""
    if output.shape[:2] != (case.scene.size, case.scene.size):
        raise ValueError(f"the output is {output.shape[1]}x{output.shape[0]}, the case is {case.scene.size} px square")
    rgb_in, coverages = render(case.scene)
    models = {}
    finals, distances, initials = [], [], []
    for grab in case.grabs:
        if grab.shape not in models:
            models[grab.shape] = ColourModel(rgb_in, coverages[grab.shape])
        model = models[grab.shape]
        before, after = model.pixels(rgb_in), model.pixels(output)
        handle = np.asarray(grab.handle, np.float64)
        target = np.asarray(grab.target, np.float64)
        if after.sum() < LOST_FRACTION * before.sum():
            final = handle
        elif grab.side is None:
            final = handle + _centroid(after) - _centroid(before)
        else:
            direction = (target - handle) / np.linalg.norm(target - handle)
            final = handle + (_extreme(after, direction) - _extreme(before, direction)) * direction
        finals.append((float(final[0]), float(final[1])))
        distances.append(float(np.linalg.norm(target - final)))
        initials.append(float(np.linalg.norm(target - handle)))
    moved = float(np.mean([1 - d / d0 for d, d0 in zip(distances, initials)]))
    outside = ~case.edit_region()
    return CaseScore(finals, distances, initials, moved, psnr_db(output, case.image(), outside),
                     all(d <= SUCCESS_PX for d in distances))
