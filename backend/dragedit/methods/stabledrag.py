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
from ..engine.learned_tracker import track_points_discriminative, train_point_filters
from ..engine.losses import motion_loss
from . import dragdiffusion
from .base import MethodSpec, Param
from .common import optimise_latent, start_latent_drag

SPEC = MethodSpec(
    name="stabledrag",
    title="StableDrag",
    description="DragDiffusion with a sharper eye for where each point is: fewer points lost on long or "
                "crowded drags. A little slower than DragDiffusion (it trains a small tracker per point).",
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
    start = start_latent_drag(ctx, p["mask_weight"])
    p0 = ctx.handles
    ctx.report("drag", 0, p["drag_steps"], p0)
    filters = train_point_filters(start.features, p0, p["r2"], p["tracker_iterations"], p["tracker_sigma"])
    state = {"confident": torch.ones(len(p0), dtype=torch.bool, device=p0.device), "first": None,
             "template_steps": torch.zeros(len(p0), dtype=torch.long, device=p0.device)}

    def track(feats, handles):
        handles, confidence = track_points_discriminative(feats, filters, handles, p["r2"], p["template_weight"])
        if state["first"] is None:
            state["first"] = confidence
        state["confident"] = confidence > p["confidence_tau"] * state["first"]
        return handles

    def supervise(feats, handles):
        state["template_steps"] += ~state["confident"]
        return motion_loss(feats, handles, ctx.targets, p["r1"], reference=start.features, reference_points=p0,
                           self_referenced=state["confident"])

    z, handles, steps_run = optimise_latent(ctx, start, p, track, supervise)
    stats = {"drag_steps_run": steps_run, "template_supervised_steps": state["template_steps"].tolist()}
    return DragOutcome(ctx.denoise(z), handles, stats)
