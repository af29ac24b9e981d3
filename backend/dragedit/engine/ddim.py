"""DDIM steps, DDPM re-noising and the inversion-strength arithmetic as small pure functions."""
from __future__ import annotations

import torch

NUM_INFERENCE_STEPS = 50


def timesteps(scheduler, num_steps: int = NUM_INFERENCE_STEPS) -> list[int]:
    """The DDIM timesteps, high to low (981, 961, ..., 1 for 50 steps with steps_offset 1)."""
    scheduler.set_timesteps(num_steps)
    return [int(t) for t in scheduler.timesteps]


def start_index(strength: float, num_steps: int = NUM_INFERENCE_STEPS) -> int:
    """Index into timesteps() where a drag at inversion strength s starts: 50 - round(50 s)."""
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"inversion strength must be in (0, 1], got {strength}")
    return num_steps - round(num_steps * strength)


def alpha_bar(scheduler, t: int) -> torch.Tensor:
    """Cumulative alpha at timestep t; below 0 the scheduler's final value (alphas_cumprod[0] here)."""
    if t < 0:
        return scheduler.final_alpha_cumprod
    return scheduler.alphas_cumprod[t]


def predict_x0(z: torch.Tensor, eps: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
    return (z - (1 - abar_t).sqrt() * eps) / abar_t.sqrt()


def ddim_step(z: torch.Tensor, eps: torch.Tensor, abar_from: torch.Tensor, abar_to: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM move (eta = 0) from one noise level to another; works both down and up."""
    x0 = predict_x0(z, eps, abar_from.to(z.dtype))
    return abar_to.to(z.dtype).sqrt() * x0 + (1 - abar_to.to(z.dtype)).sqrt() * eps


def ddpm_renoise(x_lower: torch.Tensor, abar_t: torch.Tensor, abar_lower: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Forward-diffuse a latent from a lower noise level back up to t (DragLoRA's ILFA)."""
    ratio = (abar_t / abar_lower).to(x_lower.dtype)
    return ratio.sqrt() * x_lower + (1 - ratio).sqrt() * noise
