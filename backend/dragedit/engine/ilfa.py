"""Input latent feature adaptation (DragLoRA's ILFA): refresh the drag latent with the edited model."""
from __future__ import annotations

import torch

from .ddim import ddim_step, ddpm_renoise


@torch.no_grad()
def adapt_latent(z: torch.Tensor, eps: torch.Tensor, z_original: torch.Tensor, abar_t: torch.Tensor,
                 abar_lower: torch.Tensor, editable: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One DDIM step from t down to the lower level with ``eps`` (the edited model's prediction at z),
    DDPM re-noised back to t with ``noise``.

    Applied where ``editable`` is 1 (blended where it is fractional); where it is 0 the original latent is kept.
    """
    lower = ddim_step(z, eps, abar_t, abar_lower)
    renoised = ddpm_renoise(lower, abar_t, abar_lower, noise)
    return editable * renoised + (1.0 - editable) * z_original
