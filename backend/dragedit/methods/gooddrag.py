"""GoodDrag: alternating drag and denoising (AlDD) with information-preserving motion supervision.

The drag runs at ceil(K / B) consecutive timesteps from the inversion timestep (741, 721, ..., 621
with the defaults): at each one, B drag operations of J gradient steps on the latent followed by one
point tracking, then one plain DDIM step of [original, edited]. The remaining steps denoise with mutual
self-attention. Motion supervision compares the moving patch at handle + d (d towards the target,
min(beta, distance) long) with the ORIGINAL trajectory's features at p0 at the same timestep; tracking
matches templates from those same features. The original trajectory (features at latent resolution and
the next latent for each drag timestep) is computed once per image and cached.

As in the authors' code, the motion loss of a point is (2 r1)^2 x the patch's mean L1 distance (not
DragDiffusion's (2 r1 + 1)^2): with Adam only its ratio to the mask loss matters, and at r1 = 1 the
other factor would weigh the mask loss 9/4 as much. So r1 is at least 1 (at 0 the weight is 0).
"""
from __future__ import annotations

import math

import torch

from ..engine.context import DragContext, DragOutcome
from ..engine.ddim import ddim_step
from ..engine.losses import mask_loss, motion_loss
from ..engine.patches import sample_points
from ..engine.tracking import track_points
from .base import MethodSpec, Param
from .common import all_reached, shared_params

SPEC = MethodSpec(
    name="gooddrag",
    title="GoodDrag",
    description="Steadier on long drags and keeps details and texture sharper: drags a little, cleans up, "
                "and repeats. Takes about as long as DragDiffusion.",
    params=(
        Param("operations", "int", 70, "Drag operations in total (K).", 1, 1000, advanced=False),
        Param("operations_per_step", "int", 10, "Drag operations per timestep before one denoising step (B).", 1, 100),
        Param("gradient_steps", "int", 3, "Motion-supervision gradient steps per drag operation (J).", 1, 20),
        Param("lr", "float", 0.02, "Adam learning rate on the latent.", 1e-5, 1.0),
        Param("r1", "int", 4, "Motion-supervision patch radius (feature pixels).", 1, 16),
        Param("r2", "int", 12, "Point-tracking search radius (feature pixels).", 1, 32),
        Param("beta", "float", 4.0, "Largest step towards the target per supervision (feature pixels).", 0.5, 32.0),
        Param("mask_weight", "float", 0.2, "Weight of the loss that keeps the unselected area.", 0.0, 100.0),
        Param("patience", "int", 10, "Stop dragging after this many tracking events without movement.", 1, 1000),
    ) + shared_params(lora_steps=70, inversion_strength=0.75),
)


def original_trajectory(ctx: DragContext, drag_timesteps: list[int]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """{t: (features at latent resolution, next latent)} of the un-dragged image, no gradients."""
    out = {}
    z = ctx.z_t
    with torch.no_grad():
        for t in drag_timesteps:
            eps, raw = ctx.runner.eps_and_features(z, t, ctx.emb, resize=False)
            z = ddim_step(z, eps, ctx.alpha_bar(t), ctx.alpha_bar(t - ctx.step_size))
            out[t] = (raw.detach(), z)
    return out


def drag(ctx: DragContext, p: dict) -> DragOutcome:
    """Run AlDD over the drag timesteps and denoise the rest with mutual self-attention."""
    runner, emb = ctx.runner, ctx.emb
    ctx.use_adapter(ctx.recon_adapter)
    n_steps = min(math.ceil(p["operations"] / p["operations_per_step"]), len(ctx.timesteps) - ctx.start - 1)
    drag_timesteps = ctx.timesteps[ctx.start:ctx.start + n_steps]
    reference = ctx.memo(f"gooddrag-original:{n_steps}", lambda: original_trajectory(ctx, drag_timesteps))
    use_mask = ctx.has_mask and p["mask_weight"] > 0
    handles0, targets = ctx.handles, ctx.targets
    handles = handles0.clone()
    z, z_original = ctx.z_t.clone(), ctx.z_t
    total_ops, done_ops, unchanged, stop = p["operations"], 0, 0, False
    log: list[list[int]] = []
    scaler = runner.grad_scaler()
    for k, t in enumerate(drag_timesteps):
        a_t, a_prev = ctx.alpha_bar(t), ctx.alpha_bar(t - ctx.step_size)
        ref_raw, x_prev_ref = reference[t]
        ref_features = runner.resize(ref_raw)
        templates = sample_points(ref_features, handles0)
        z = z.detach().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=p["lr"])
        ops_here = 0
        while not stop and ops_here < p["operations_per_step"] and done_ops < total_ops:
            for j in range(p["gradient_steps"]):
                ctx.check_cancel()
                if use_mask:
                    eps, feats = runner.eps_and_features(z, t, emb)
                else:
                    feats = runner.features(z, t, emb)
                if k > 0 and ops_here == 0 and j == 0:  # re-locate the handles after the denoising step
                    handles, _ = track_points(feats.detach(), templates, handles, targets, p["r2"])
                loss = motion_loss(feats, handles, targets, p["r1"], reference=ref_features,
                                   reference_points=handles0, max_step=p["beta"], patch_weight=(2 * p["r1"]) ** 2)
                if use_mask:
                    loss = loss + mask_loss(ddim_step(z, eps, a_t, a_prev), x_prev_ref, ctx.editable, p["mask_weight"])
                runner.step(loss, optimizer, scaler)
            tracked, _ = track_points(feats.detach(), templates, handles, targets, p["r2"])
            unchanged = unchanged + 1 if torch.equal(tracked, handles) else 0
            handles = tracked
            ops_here += 1
            done_ops += 1
            ctx.report("drag", done_ops, total_ops, handles, z.detach())
            stop = all_reached(handles, targets) or unchanged >= p["patience"]
        log.append([t, ops_here])
        with torch.no_grad():  # one DDIM step of [original, edited], no mutual attention yet
            z = ddim_step(z.detach(), runner.eps(z.detach(), t, emb), a_t, a_prev)
        z_original = x_prev_ref
        if stop or done_ops >= total_ops:
            break
    resume = ctx.start + len(log)
    latent = ctx.denoise(z, from_index=resume, z_original=z_original, reference_name=f"gooddrag-original:{n_steps}")
    return DragOutcome(latent, handles, {"drag_operations": done_ops, "drag_timesteps": log})
