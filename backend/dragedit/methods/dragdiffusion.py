"""DragDiffusion (the baseline): optimise the inverted latent with self-referenced motion supervision."""
from __future__ import annotations

from ..engine.context import DragContext, DragOutcome
from ..engine.losses import motion_loss
from ..engine.patches import sample_points
from ..engine.tracking import track_points
from .base import MethodSpec, Param
from .common import optimise_latent, shared_params, start_latent_drag

SPEC = MethodSpec(
    name="dragdiffusion",
    title="DragDiffusion",
    description="The classic drag: good for short moves of a part (a limb, a corner). "
                "About 1-2 min on a recent GPU, most of it learning the image first; a repeat on the same image is quicker.",
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
    start = start_latent_drag(ctx, p["mask_weight"])
    templates = sample_points(start.features, ctx.handles)

    def track(feats, handles):
        return track_points(feats, templates, handles, ctx.targets, p["r2"])[0]

    def supervise(feats, handles):
        return motion_loss(feats, handles, ctx.targets, p["r1"])

    z, handles, steps_run = optimise_latent(ctx, start, p, track, supervise)
    return DragOutcome(ctx.denoise(z), handles, {"drag_steps_run": steps_run})
