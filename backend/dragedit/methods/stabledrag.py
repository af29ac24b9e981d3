"""StableDrag-Diff: DragDiffusion with discriminative point tracking and confident motion supervision.

Before dragging, one 1x1-convolution filter per handle is trained on the original features F0 around
p0 (engine/learned_tracker.py, which documents the score normalisation). Each drag step then tracks
every handle to the argmax of S = lambda x exp(-mean_c |F - f_i| / d_i) + (1 - lambda) x g(F, z_i) in its
square window, and supervises a point with DragDiffusion's self-referenced loss while its confidence
s_i = max S stays above tau x s_1, and with the fixed template (F0 around p0) while it is below.

Choices the paper leaves open: s_1 is each point's confidence at the first tracking, i.e. after the
first optimisation step (tracking starts at step 1, as in DragDiffusion); before that every point is
confident. The comparison is per point and vectorised; only the early-stopping test reads back.
"""
from __future__ import annotations

import torch

from ..engine.context import DragContext, DragOutcome
from ..engine.ddim import ddim_step
from ..engine.learned_tracker import track_points_discriminative, train_point_filters
from ..engine.losses import mask_loss, motion_loss
from . import dragdiffusion
from .base import MethodSpec, Param
from .common import all_reached

SPEC = MethodSpec(
    name="stabledrag",
    title="StableDrag",
    description="DragDiffusion with a learned point tracker and confidence-based supervision: steadier points on long drags.",
    # DragDiffusion's parameters and defaults (LoRA 80 steps, strength 0.7, lr 0.01, r1 1, r2 3, mask 0.1, 80 steps)
    params=dragdiffusion.SPEC.params + (
        Param("tracker_iterations", "int", 1000, "Training iterations of each point's tracking filter.", 0, 10000),
        Param("tracker_sigma", "float", 1.0, "Width of the Gaussian the tracking filter learns (feature pixels).", 0.1, 16.0),
        Param("template_weight", "float", 0.3,
              "Weight (lambda) of template matching in the tracking score; the rest is the learned filter.", 0.0, 1.0),
        Param("confidence_tau", "float", 0.4,
              "A point whose confidence falls below tau x its first confidence is supervised by its original template.",
              0.0, 1.0),
    ),
)


def drag(ctx: DragContext, p: dict) -> DragOutcome:
    """Run StableDrag's drag loop on ctx.z_t and denoise the result."""
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
    p0, targets = ctx.handles, ctx.targets
    steps = p["drag_steps"]
    ctx.report("drag", 0, steps, p0)
    filters = train_point_filters(f0, p0, p["r2"], p["tracker_iterations"], p["tracker_sigma"])
    handles = p0.clone()
    confident = torch.ones(len(p0), dtype=torch.bool, device=p0.device)
    first_confidence = None
    template_supervised = torch.zeros(len(p0), dtype=torch.long, device=p0.device)
    z = ctx.z_t.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=p["lr"])
    for step in range(steps):
        ctx.check_cancel()
        if use_mask:
            eps, feats = runner.eps_and_features(z, t, emb)
        else:
            feats = runner.features(z, t, emb)
        if step > 0:
            handles, confidence = track_points_discriminative(feats.detach(), filters, handles, p["r2"],
                                                              p["template_weight"])
            if first_confidence is None:
                first_confidence = confidence
            confident = confidence > p["confidence_tau"] * first_confidence
        if all_reached(handles, targets):
            ctx.report("drag", steps, steps, handles, z.detach())
            break
        template_supervised += ~confident
        loss = motion_loss(feats, handles, targets, p["r1"], reference=f0, reference_points=p0,
                           self_referenced=confident)
        if use_mask:
            loss = loss + mask_loss(ddim_step(z, eps, a_t, a_prev), x_prev_ref, ctx.editable, p["mask_weight"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        runner.counter.backward += 1
        optimizer.step()
        ctx.report("drag", step + 1, steps, handles, z.detach())
    stats = {"drag_steps_run": step + 1, "template_supervised_steps": template_supervised.tolist()}
    return DragOutcome(ctx.denoise(z.detach()), handles, stats)
