"""Denoising the original and the edited latent together with mutual self-attention."""
from __future__ import annotations

from typing import Callable

import torch

from .ddim import alpha_bar, ddim_step
from .features import UNetRunner
from .mutual_attention import MutualAttentionState, mutual_attention


ReferenceKeysValues = list[dict[str, tuple[torch.Tensor, torch.Tensor]]]  # per step: layer -> (keys, values)


@torch.no_grad()
def denoise_mutual(runner: UNetRunner, scheduler, z_original: torch.Tensor, z_edited: torch.Tensor,
                   emb: torch.Tensor, timesteps_down: list[int], on_step: Callable[[int, int, torch.Tensor], None] | None = None,
                   use_reference_adapter: Callable[[bool], None] | None = None,
                   reference: ReferenceKeysValues | None = None, record: ReferenceKeysValues | None = None) -> torch.Tensor:
    """Denoise [original, edited] from timesteps_down[0] to the end; returns the edited clean latent.

    Without ``use_reference_adapter`` both rows run in one batch through the same UNet. With it,
    each step runs the original row first with the reference adapter (recording its keys/values),
    then the edited row with the edit adapter (replaying them): use_reference_adapter(True/False)
    switches the UNet's active adapter.

    The original row does not depend on the edited one, so its keys/values can be kept: ``record``
    receives them per step, and a later call over the same steps with ``reference`` set to them runs
    the edited row alone (half the passes).
    """
    state = MutualAttentionState(keep=record is not None and reference is None)
    step = scheduler.config.num_train_timesteps // len(scheduler.timesteps)
    orig, edit = z_original, z_edited
    with mutual_attention(runner.unet, state):
        for i, t in enumerate(timesteps_down):
            if reference is not None:
                if use_reference_adapter is not None:
                    use_reference_adapter(False)
                state.mode, state.store = "replay", reference[i]
                eps_edit = runner.eps(edit, t, emb)
            elif use_reference_adapter is None:
                state.mode = "batch"
                eps = runner.eps(torch.cat([orig, edit]), t, emb)
                eps_orig, eps_edit = eps[:1], eps[1:]
            else:
                use_reference_adapter(True)
                state.mode = "record"
                eps_orig = runner.eps(orig, t, emb)
                use_reference_adapter(False)
                state.mode = "replay"
                eps_edit = runner.eps(edit, t, emb)
            if state.keep:
                record.append(dict(state.store))
            a_t, a_prev = alpha_bar(scheduler, t), alpha_bar(scheduler, t - step)
            edit = ddim_step(edit, eps_edit, a_t, a_prev)
            if reference is None:
                orig = ddim_step(orig, eps_orig, a_t, a_prev)
            if on_step:
                on_step(i + 1, len(timesteps_down), edit)
    return edit
