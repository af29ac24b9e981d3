"""Motion-supervision losses and the latent mask loss."""
from __future__ import annotations

import torch

from .patches import sample_patches


def motion_directions(handles: torch.Tensor, targets: torch.Tensor, max_step: float | None = None) -> torch.Tensor:
    """Step from each handle towards its target: unit length, or min(max_step, distance) long."""
    delta = targets - handles
    dist = delta.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    length = torch.ones_like(dist) if max_step is None else dist.clamp(max=max_step)
    return delta / dist * length


def motion_loss(
    features: torch.Tensor,
    handles: torch.Tensor,
    targets: torch.Tensor,
    radius: int,
    reference: torch.Tensor | None = None,
    reference_points: torch.Tensor | None = None,
    max_step: float | None = None,
    reach: float = 2.0,
    self_referenced: torch.Tensor | None = None,
    patch_weight: float | None = None,
) -> torch.Tensor:
    """Pull the content at each handle one step towards its target.

    The moving patch is sampled at handle + d (d unit, or min(max_step, distance) long); the
    reference patch (detached) is sampled from ``reference`` at ``reference_points``. Defaults give
    DragDiffusion's self-referenced loss (reference = these features at the current handles).
    GoodDrag passes the original trajectory's features at p0 and max_step = beta; DragLoRA passes
    the fixed template F0 at p0. With ``self_referenced`` (N booleans) those points use the
    self-referenced patch and the others the given reference (StableDrag's confident supervision).
    Points already within ``reach`` pixels of their target are left out.
    Each point contributes ``patch_weight`` x mean |moving - reference|: (2r+1)^2 by default
    (DragDiffusion, StableDrag, DragLoRA); the authors' GoodDrag uses (2r)^2.
    """
    active = (targets - handles).norm(dim=-1) >= reach
    if not bool(active.any()):
        return features.sum() * 0.0
    h, t = handles[active], targets[active]
    ref_map = features if reference is None else reference
    ref_pts = h if reference_points is None else reference_points[active]
    ref = sample_patches(ref_map, ref_pts, radius).detach()
    if self_referenced is not None:
        own = sample_patches(features, h, radius).detach()
        ref = torch.where(self_referenced[active][:, None, None, None], own, ref)
    moved = sample_patches(features, h + motion_directions(h, t, max_step), radius)
    per_point = (moved - ref).abs().mean(dim=(1, 2, 3))
    weight = (2 * radius + 1) ** 2 if patch_weight is None else patch_weight
    return weight * per_point.sum()


def mask_loss(x_prev: torch.Tensor, x_prev_ref: torch.Tensor, editable: torch.Tensor, weight: float) -> torch.Tensor:
    """weight x sum |x_prev - x_prev_ref| over the region that must not change (editable = 1 inside the mask)."""
    return weight * ((x_prev - x_prev_ref) * (1.0 - editable)).abs().sum()
