"""What several methods share: LoRA/inversion/feather parameters, the arrival check, and the
single-timestep latent optimisation of DragDiffusion and StableDrag."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..engine.context import DragContext
from ..engine.ddim import ddim_step
from ..engine.losses import mask_loss
from .base import Param


def shared_params(lora_steps: int, inversion_strength: float) -> tuple[Param, ...]:
    """RecLoRA, inversion and paste parameters with a method's published defaults."""
    return (
        Param("inversion_strength", "float", inversion_strength,
              "How far the image is inverted before dragging (0.7 = timestep 681 of 1000).", 0.02, 1.0),
        Param("lora_steps", "int", lora_steps, "Reconstruction LoRA training steps (0 = no LoRA).", 0, 2000),
        Param("lora_rank", "int", 16, "Reconstruction LoRA rank.", 1, 256),
        Param("lora_lr", "float", 5e-4, "Reconstruction LoRA learning rate (AdamW).", 1e-6, 1e-1),
        Param("lora_batch", "int", 4, "Reconstruction LoRA batch size.", 1, 16),
        Param("feather", "int", 4, "Soft edge, in image pixels, where the result blends into the untouched image.", 0, 256,
              advanced=False),
    )


def all_reached(handles: torch.Tensor, targets: torch.Tensor, reach: float = 2.0) -> bool:
    """True when every handle is within ``reach`` feature pixels of its target."""
    return bool(((targets - handles).norm(dim=-1) < reach).all())


@dataclass
class LatentDragStart:
    """The original features F0 at the drag timestep and, with a mask, the reference next latent."""

    features: torch.Tensor
    next_latent: torch.Tensor | None


def start_latent_drag(ctx: DragContext, mask_weight: float) -> LatentDragStart:
    """F0 of ctx.z_t (a feature-only pass when no mask loss is needed) with the RecLoRA active."""
    ctx.use_adapter(ctx.recon_adapter)
    with torch.no_grad():
        if ctx.has_mask and mask_weight > 0:
            eps, f0 = ctx.runner.eps_and_features(ctx.z_t, ctx.t, ctx.emb)
            return LatentDragStart(f0, ddim_step(ctx.z_t, eps, ctx.alpha_bar(ctx.t), ctx.alpha_bar(ctx.t - ctx.step_size)))
        return LatentDragStart(ctx.runner.features(ctx.z_t, ctx.t, ctx.emb), None)


Tracker = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Supervision = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def optimise_latent(ctx: DragContext, start: LatentDragStart, p: dict, track: Tracker,
                    supervise: Supervision) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Adam on z_t at one timestep: each step tracks (from step 1 on), stops when all handles
    arrived, else minimises supervise(features, handles) plus the mask loss.

    Returns the dragged latent, the handles and the number of steps run.
    """
    t, emb, runner = ctx.t, ctx.emb, ctx.runner
    a_t, a_prev = ctx.alpha_bar(t), ctx.alpha_bar(t - ctx.step_size)
    handles = ctx.handles.clone()
    z = ctx.z_t.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=p["lr"])
    scaler = runner.grad_scaler()
    steps = p["drag_steps"]
    for step in range(steps):
        ctx.check_cancel()
        if start.next_latent is not None:
            eps, feats = runner.eps_and_features(z, t, emb)
        else:
            feats = runner.features(z, t, emb)
        if step > 0:
            handles = track(feats.detach(), handles)
        if all_reached(handles, ctx.targets):
            ctx.report("drag", steps, steps, handles, z.detach())
            return z.detach(), handles, step + 1
        loss = supervise(feats, handles)
        if start.next_latent is not None:
            loss = loss + mask_loss(ddim_step(z, eps, a_t, a_prev), start.next_latent, ctx.editable, p["mask_weight"])
        runner.step(loss, optimizer, scaler)
        ctx.report("drag", step + 1, steps, handles, z.detach())
    return z.detach(), handles, steps
