"""Bilinear sampling of square feature patches at float positions."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def patch_offsets(radius: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(2r+1)^2 x 2 offsets (dx, dy) in row-major order of the patch."""
    r = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([dx.reshape(-1), dy.reshape(-1)], dim=-1)


def sample_patches(features: torch.Tensor, centers: torch.Tensor, radius: int) -> torch.Tensor:
    """Sample a (2r+1)x(2r+1) patch around each center, bilinearly.

    features: 1 x C x H x W; centers: N x 2 as (x, y) in feature pixels (float).
    Returns N x C x (2r+1) x (2r+1). Positions outside the map read zeros.
    """
    _, _, height, width = features.shape
    k = 2 * radius + 1
    offsets = patch_offsets(radius, features.device, centers.dtype)
    pos = centers[:, None, :] + offsets[None]  # N x k*k x 2
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=features.device, dtype=pos.dtype)
    grid = (pos * scale - 1.0).to(features.dtype).view(1, -1, 1, 2)  # align_corners=True mapping
    sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    n = centers.shape[0]
    return sampled.view(features.shape[1], n, k, k).permute(1, 0, 2, 3)


def sample_points(features: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Feature vectors at float positions: N x C."""
    return sample_patches(features, centers, 0)[:, :, 0, 0]
