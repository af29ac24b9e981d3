"""The delta-denoising-score (DDS) regulariser: keeps an edited adapter's denoising close to a reference adapter's.

DragLoRA predicts x0_hat from the drag latent with its trainable adapter, noises it to a random
timestep tau, and compares the noise predicted by the reference (RecLoRA) and the edited (DragLoRA)
adapter. The difference, weighted by (1 - alpha_bar_tau), is a gradient on x0_hat only: it reaches
the adapter through x0_hat (the score-distillation trick), never through the two comparison passes.
"""
from __future__ import annotations

from typing import Callable

import torch

from .ddim import alpha_bar
from .features import UNetRunner


@torch.no_grad()
def dds_gradient(runner: UNetRunner, scheduler, x0_hat: torch.Tensor, emb: torch.Tensor, generator: torch.Generator,
                 use_adapter: Callable[[str | None], None], reference: str | None, edited: str) -> torch.Tensor:
    """(1 - alpha_bar_tau) (eps_reference - eps_edited) on x0_hat noised to tau ~ U[0, T).

    ``use_adapter(name)`` makes an adapter active (None: the base model); ``edited`` is active afterwards.
    """
    tau = int(torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=generator))
    noise = torch.randn(x0_hat.shape, generator=generator, device=generator.device).to(x0_hat.device)
    abar = alpha_bar(scheduler, tau).to(x0_hat.device)
    noisy = abar.sqrt() * x0_hat.detach() + (1 - abar).sqrt() * noise
    use_adapter(reference)
    eps_reference = runner.eps(noisy, tau, emb)
    use_adapter(edited)
    eps_edited = runner.eps(noisy, tau, emb)
    return (1 - abar) * (eps_reference - eps_edited)


def dds_loss(x0_hat: torch.Tensor, gradient: torch.Tensor, weight: float) -> torch.Tensor:
    """A loss whose gradient on x0_hat is weight x gradient / numel(x0_hat).

    The mean (1 / numel) is the scale of the authors' form 0.5 x weight x mean((x0_hat - target)^2)
    with target = x0_hat - gradient, for which the published weight (50) was chosen.
    """
    return weight * (gradient.detach() * x0_hat).sum() / x0_hat.numel()
