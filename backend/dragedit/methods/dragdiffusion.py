"""DragDiffusion (the baseline): optimise the inverted latent with self-referenced motion supervision."""
from __future__ import annotations

import torch

from ..engine.context import DragContext, DragOutcome
from ..engine.ddim import ddim_step
from ..engine.losses import mask_loss, motion_loss
from ..engine.patches import sample_points
from ..engine.tracking import track_points
from .base import MethodSpec, Param
from .common import all_reached, shared_params

SPEC = MethodSpec(
    name="dragdiffusion",
    title="DragDiffusion",
    description="The baseline: optimises the inverted latent at one timestep, then denoises with mutual self-attention.",
    params=(
        Param("drag_steps", "int", 80, "Maximum motion-supervision steps.", 1, 1000, advanced=False),
        Param("lr", "float", 0.01, "Adam learning rate on the latent.", 1e-5, 1.0),
        Param("r1", "int", 1, "Motion-supervision patch radius (feature pixels).", 0, 16),
        Param("r2", "int", 3, "Point-tracking search radius (feature pixels).", 1, 32),
        Param("mask_weight", "float", 0.1, "Weight of the loss that keeps the unselected area.", 0.0, 100.0),
    ) + shared_params(lora_steps=80, inversion_strength=0.7),
)


def drag(ctx: DragContext, p: dict) -> DragOutcome:
    """Run DragDiffusion's drag loop on ctx.z_t and denoise the result."""
    t, emb, runner = ctx.t, ctx.emb, ctx.runner
    ctx.use_adapter(ctx.recon_adapter)
    use_mask = ctx.has_mask and p["mask_weight"] > 0
    a_t, a_prev = ctx.alpha_bar(t), ctx.alpha_bar(t - ctx.step_size)
    with torch.no_grad():
        if use_mask:
            eps0, f0 = runner.eps_and_features(ctx.z_t, t, emb)
            x_prev_ref = ddim_step(ctx.z_t, eps0, a_t, a_prev)
        else:
            f0 = runner.features(ctx.z_t, t, emb)
    templates = sample_points(f0, ctx.handles)
    del f0
    handles, targets = ctx.handles.clone(), ctx.targets
    z = ctx.z_t.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=p["lr"])
    steps = p["drag_steps"]
    for step in range(steps):
        ctx.check_cancel()
        if use_mask:
            eps, feats = runner.eps_and_features(z, t, emb)
        else:
            feats = runner.features(z, t, emb)
        if step > 0:
            handles, _ = track_points(feats.detach(), templates, handles, targets, p["r2"])
        if all_reached(handles, targets):
            ctx.report("drag", steps, steps, handles, z.detach())
            break
        loss = motion_loss(feats, handles, targets, p["r1"])
        if use_mask:
            loss = loss + mask_loss(ddim_step(z, eps, a_t, a_prev), x_prev_ref, ctx.editable, p["mask_weight"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        runner.counter.backward += 1
        optimizer.step()
        ctx.report("drag", step + 1, steps, handles, z.detach())
    return DragOutcome(ctx.denoise(z.detach()), handles, {"drag_steps_run": step + 1})
