"""DDIM inversion of a clean latent up to the drag timestep, keeping the whole trajectory."""
from __future__ import annotations

from typing import Callable

import torch

from .ddim import alpha_bar, ddim_step
from .features import UNetRunner


@torch.no_grad()
def ddim_invert(runner: UNetRunner, scheduler, z0: torch.Tensor, emb: torch.Tensor, timesteps_up: list[int],
                on_step: Callable[[int, int], None] | None = None) -> dict[int, torch.Tensor]:
    """Invert z0 through timesteps_up (ascending, e.g. 1, 21, ..., 681); returns {t: z_t}.

    Each step evaluates epsilon at the destination timestep on the current latent (as the reference
    implementations do) and moves deterministically from the previous noise level to t.
    """
    trajectory: dict[int, torch.Tensor] = {}
    z = z0
    step = timesteps_up[1] - timesteps_up[0] if len(timesteps_up) > 1 else scheduler.config.num_train_timesteps // 50
    for i, t in enumerate(timesteps_up):
        eps = runner.eps(z, t, emb)
        z = ddim_step(z, eps, alpha_bar(scheduler, t - step), alpha_bar(scheduler, t))
        trajectory[t] = z
        if on_step:
            on_step(i + 1, len(timesteps_up))
    return trajectory
