"""The drag papers' image metrics, for `dragedit bench quality`.

- GoodDrag's Dragging Accuracy Index (paper Eq. 10): per point pair, the squared difference between
  the patch of radius gamma around the handle in the input and the patch around the target in the
  output (pixel values in [0, 1], summed over the patch and the channels), averaged over the pairs
  and divided by the patch size (2 gamma + 1)^2. Lower is better; 0 means the content at the handle
  now sits exactly at the target. (The authors' script divides by the point count twice; this is the
  paper's formula.) The paper's radii 1, 5, 10, 20 were chosen for 512 px images; the toy's images
  are 128 px, so the radii are scaled by 1/4 (5, 10, 20 -> 1, 2, 5; 1 would be a quarter pixel).
- SSIM (Wang et al. 2004, 11 x 11 Gaussian window, sigma 1.5, averaged over the RGB channels), with
  PSNR the similarity of DragLoRA's drag-back evaluation: drag, drag the result back from the targets
  to the handles, compare with the input.
"""
from __future__ import annotations

import math

import numpy as np

PAPER_SIZE = 512  # image size GoodDrag's DAI radii were chosen for
PAPER_DAI_RADII = (5, 10, 20)  # the paper's 1 would be a quarter pixel here

Point = tuple[float, float]


def dai_radii(image_size: int) -> tuple[int, ...]:
    """The paper's DAI radii scaled to `image_size` (at least 1 pixel, no repeats)."""
    return tuple(sorted({max(1, int(r * image_size / PAPER_SIZE)) for r in PAPER_DAI_RADII}))


def _patch(image: np.ndarray, centre: Point, radius: int) -> np.ndarray:
    """The (2 radius + 1)^2 patch around the pixel holding `centre`, edge pixels repeated outside the image."""
    x, y = int(math.floor(centre[0])), int(math.floor(centre[1]))
    padded = np.pad(image, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    height, width = image.shape[:2]
    x, y = min(max(x, 0), width - 1), min(max(y, 0), height - 1)
    return padded[y:y + 2 * radius + 1, x:x + 2 * radius + 1]


def dai(original: np.ndarray, edited: np.ndarray, points: list[tuple[Point, Point]], radius: int) -> float:
    """GoodDrag's Dragging Accuracy Index of one edit at one patch radius (images H x W x 3+, uint8)."""
    a = original[..., :3].astype(np.float64) / 255.0
    b = edited[..., :3].astype(np.float64) / 255.0
    total = sum(float(np.sum((_patch(a, handle, radius) - _patch(b, target, radius)) ** 2))
                for handle, target in points)
    return total / len(points) / (2 * radius + 1) ** 2


def _gaussian_filter(image: np.ndarray, sigma: float = 1.5, size: int = 11) -> np.ndarray:
    """Separable Gaussian filter of an H x W x C float image, 'valid' part only (no padding)."""
    offsets = np.arange(size) - size // 2
    kernel = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel /= kernel.sum()
    rows = sum(k * image[i:image.shape[0] - size + 1 + i] for i, k in enumerate(kernel))
    return sum(k * rows[:, i:rows.shape[1] - size + 1 + i] for i, k in enumerate(kernel))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of two uint8 RGB(A) images (1 = identical)."""
    x = a[..., :3].astype(np.float64)
    y = b[..., :3].astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _gaussian_filter(x), _gaussian_filter(y)
    vx = _gaussian_filter(x * x) - mx ** 2
    vy = _gaussian_filter(y * y) - my ** 2
    cov = _gaussian_filter(x * y) - mx * my
    index = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(index.mean())
