"""Point tracking by nearest-neighbour search of a feature template around the current handle."""
from __future__ import annotations

import math

import torch

from .patches import patch_offsets, sample_patches

REGIONS = ("square", "distance", "angle")


def candidate_mask(handles: torch.Tensor, targets: torch.Tensor, radius: int, region: str,
                   size: tuple[int, int], angle_deg: float = 30.0) -> torch.Tensor:
    """Which window offsets each handle may move to: N x (2r+1)^2 booleans.

    square: every position of the window; distance: positions no farther from the target than the
    current handle ("distance-closer"); angle: positions within angle_deg of the direction to the
    target ("angle-closer"), plus staying put. Positions outside the feature map are excluded.
    """
    height, width = size
    offsets = patch_offsets(radius, handles.device, handles.dtype)
    pos = handles[:, None, :] + offsets[None]
    ok = (pos[..., 0] >= 0) & (pos[..., 0] <= width - 1) & (pos[..., 1] >= 0) & (pos[..., 1] <= height - 1)
    if region == "square":
        return ok
    to_target = targets - handles
    if region == "distance":
        closer = (targets[:, None, :] - pos).norm(dim=-1) <= to_target.norm(dim=-1, keepdim=True) + 1e-6
        return ok & closer
    if region == "angle":
        cos = torch.nn.functional.cosine_similarity(offsets[None], to_target[:, None, :], dim=-1)
        within = cos >= math.cos(math.radians(angle_deg))
        stay = (offsets == 0).all(dim=-1)[None]
        return ok & (within | stay)
    raise ValueError(f"unknown tracking region '{region}', expected one of {REGIONS}")


def window_distances(features: torch.Tensor, templates: torch.Tensor, handles: torch.Tensor, radius: int) -> torch.Tensor:
    """Channel-mean L1 distance between each template and every position of its window: N x (2r+1)^2."""
    windows = sample_patches(features, handles, radius)  # N x C x k x k
    dist = (windows - templates[:, :, None, None]).abs().mean(dim=1)
    return dist.flatten(1)


def track_points(features: torch.Tensor, templates: torch.Tensor, handles: torch.Tensor, targets: torch.Tensor,
                 radius: int, region: str = "square", angle_deg: float = 30.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each handle to the best match of its template within the allowed window.

    Returns the new handles (N x 2) and the best match distance minD (channel-mean L1, N).
    (The argmin is the same as with the channel sum of the reference code; the mean is what
    DragLoRA's thresholds d1, d2 are stated in.)
    """
    with torch.no_grad():
        dist = window_distances(features, templates, handles, radius)
        allowed = candidate_mask(handles, targets, radius, region, features.shape[-2:], angle_deg)
        dist = dist.masked_fill(~allowed, float("inf"))
        best, idx = dist.min(dim=1)
        offsets = patch_offsets(radius, handles.device, handles.dtype)
        return handles + offsets[idx], best
