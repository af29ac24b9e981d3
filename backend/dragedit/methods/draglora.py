"""DragLoRA: drag by training a second LoRA adapter online; the latent follows through ILFA.

The optimised variable is the "drag" adapter on the same UNet as the RecLoRA (peft named adapters),
initialised as a copy of it; the latent is never optimised by gradient. At the drag timestep t each
iteration runs the UNet with the drag adapter on the current latent z, tracks the handles against the
fixed template F0(p0) (distance-closer window; angle-closer for DragLoRA-Fast), and then either
- DOO (dual-objective optimisation): drag loss (features at handle + d against the fixed F0 patch at
  p0), mask loss and the DDS regulariser against the RecLoRA, one AdamW step on the drag adapter; or
- nothing more (ILFA-only), while tracking is confident and the handles land where DOO aimed them;
and ends with ILFA: one DDIM step t -> t - 20 with the drag adapter, re-noised back to t, inside the
mask. K counts DOO steps only. The rest is denoised with the drag adapter on the edited branch and
the RecLoRA as the mutual-attention reference.

Switching follows the authors' code where the paper is silent (METHODS.md, "Where the authors' code
is more precise"):
- ILFA-only mode starts when the authors' step count (DOO steps minus keep-backs) is strictly greater
  than k_ini, the smallest minD over the points is below d1 (confident) and the joint norm of all
  points' displacements from where the last DOO step aimed them is below l2 (landed).
- It ends when the smallest minD exceeds d2, or after more than 5 ILFA-only iterations (counted over
  the stay) in which no handle moved.
- Outside ILFA-only mode, when the entry test does not apply (too early or not confident) and the
  largest minD exceeds d2, the points with minD > d2 keep their previous positions and the step
  count goes back by one (delaying ILFA-only mode); after 3 keep-backs in a row the tracked
  positions are accepted. A keep-back series ends at the first tracking where no point is lost.
- minD is rounded to 2 decimals before every comparison.
- There is no limit on ILFA-only iterations in the authors' code; ``max_ilfa_steps`` (default 1000,
  far above what a drag needs) only guarantees that a run ends: once reached, ILFA-only mode is
  not entered again.
Other choices:
- DDS: tau uniform in [0, T); x0_hat comes from the DOO pass's epsilon (no extra pass); the weight
  multiplies a mean over latent elements, the scale the published weight 50 was chosen for.
- ILFA applies inside the binary latent mask (the user's selection, or the default region around the
  points when there is none), and the original latent is kept outside it.
- An ILFA-only iteration makes one pass without gradients and reuses its epsilon for ILFA; when
  ILFA-only mode ends in such an iteration, the DOO step re-runs the pass with gradients.
- lora_steps = 0: the drag adapter starts as a zero-effect adapter seeded from the job's seed, and
  the base model is the DDS and mutual-attention reference.
- minD (d1, d2) is the channel-mean L1 distance of the up_blocks[2] features, calibrated on SD-1.5.
  Where a model's features are larger, tracking looks less confident (ILFA-only mode is rarer and
  positions are kept more often); where they are smaller (the tiny random test models) it looks more
  confident than it is. Scale d1 and d2 with the model's typical feature magnitude.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..engine.context import DragContext, DragOutcome
from ..engine.dds import dds_gradient, dds_loss
from ..engine.ddim import ddim_step, predict_x0
from ..engine.ilfa import adapt_latent
from ..engine.lora import add_lora, copy_adapter, lora_parameters
from ..engine.losses import mask_loss, motion_directions, motion_loss
from ..engine.patches import sample_points
from ..engine.tracking import track_points
from .base import MethodSpec, Param
from .common import all_reached, shared_params

DRAG_ADAPTER = "drag"
MAX_KEPT = 3  # keep-backs in a row before the tracked positions are accepted
STALL_LIMIT = 5  # ILFA-only mode ends after more than this many iterations without movement

SPEC = MethodSpec(
    name="draglora",
    title="DragLoRA",
    description="Learns the drag itself and skips work once the points follow: often the furthest moves "
                "for the time. Select the part to move: it reworks everything it may change.",
    params=(
        Param("drag_steps", "int", 80, "Optimisation (DOO) steps of the drag LoRA (K); adaptation-only steps are extra.",
              1, 1000, advanced=False),
        Param("tracking_region", "choice", "distance",
              "Where a tracked handle may move: 'distance' (no farther from its target; DragLoRA) or "
              "'angle' (within angle_deg of the target direction; DragLoRA-Fast).",
              choices=("distance", "angle"), advanced=False),
        Param("angle_deg", "float", 30.0, "Half-angle of the angle-closer tracking region (degrees).", 1.0, 90.0),
        Param("lr", "float", 1e-4, "AdamW learning rate of the drag LoRA.", 1e-7, 1e-1),
        Param("r1", "int", 1, "Motion-supervision patch radius (feature pixels).", 0, 16),
        Param("r2", "int", 3, "Point-tracking search radius (feature pixels).", 1, 32),
        Param("mask_weight", "float", 0.1, "Weight of the loss that keeps the unselected area.", 0.0, 100.0),
        Param("dds_weight", "float", 50.0,
              "Weight of the DDS regulariser keeping the drag LoRA close to the RecLoRA (0 = off).", 0.0, 10000.0),
        Param("k_ini", "int", 10, "DOO steps before adaptation-only iterations are allowed.", 0, 1000),
        Param("d1", "float", 1.0,
              "Tracking is confident below this best-match distance (channel-mean L1 of the features).", 0.0, 100.0),
        Param("d2", "float", 1.3,
              "Above this best-match distance a point keeps its position and adaptation-only mode ends.", 0.0, 100.0),
        Param("l2", "float", 1.4,
              "A handle landed when within this distance (feature pixels) of where the last DOO step aimed it.", 0.0, 32.0),
        Param("max_ilfa_steps", "int", 1000, "Most adaptation-only iterations in one drag.", 0, 100000),
    ) + shared_params(lora_steps=80, inversion_strength=0.7),
)


def round_distance(min_d: torch.Tensor) -> torch.Tensor:
    """minD rounded to 2 decimals, as the authors compare it with d1 and d2."""
    return torch.round(min_d.double() * 100) / 100


@dataclass
class Switching:
    """DragLoRA's adaptive switching between DOO and ILFA-only iterations (rules in the module doc)."""

    p: dict
    ilfa_only: bool = False
    step_count: int = 0  # the authors' step index: DOO steps run minus keep-backs
    entries: int = 0
    ilfa_steps: int = 0
    unmoved: int = 0
    kept: int = 0
    keep_backs: int = 0

    def doo_step_done(self) -> None:
        self.step_count += 1

    def update(self, previous: torch.Tensor, tracked: torch.Tensor, min_d: torch.Tensor,
               aim: torch.Tensor) -> torch.Tensor:
        """Take a tracking outcome (``aim``: where the last DOO step aimed the handles); returns the
        handles to use and updates the mode."""
        min_d = round_distance(min_d)
        lowest, highest, landed_by, unmoved = torch.stack([
            min_d.min(), min_d.max(), (tracked - aim).norm().double(), (tracked == previous).all().double()]).tolist()
        p = self.p
        if self.ilfa_only:
            self.unmoved += int(unmoved)
            if lowest > p["d2"] or self.unmoved > STALL_LIMIT:
                self.ilfa_only, self.unmoved = False, 0
            return tracked
        if self.step_count > p["k_ini"] and lowest < p["d1"]:
            if landed_by < p["l2"] and self.ilfa_steps < p["max_ilfa_steps"]:
                self.ilfa_only, self.entries = True, self.entries + 1
            return tracked
        if highest > p["d2"]:
            self.kept += 1
            if self.kept <= MAX_KEPT:
                self.step_count -= 1
                self.keep_backs += 1
                return torch.where((min_d > p["d2"])[:, None], previous, tracked)
            self.kept = 0
            return tracked
        self.kept = 0
        return tracked


def start_drag_adapter(ctx: DragContext, rank: int) -> list[torch.nn.Parameter]:
    """Make the drag adapter a copy of the RecLoRA (or a zero-effect one without it) and activate it.

    The adapter stays in the UNet between drags (frozen, inactive), so the next drag overwrites its
    weights in place instead of injecting a new adapter into every attention layer.
    """
    unet = ctx.model.unet
    if ctx.recon_adapter is None:
        add_lora(unet, DRAG_ADAPTER, rank, ctx.generator)
    else:
        copy_adapter(unet, ctx.recon_adapter, DRAG_ADAPTER, rank)
    ctx.trainable_adapters.add(DRAG_ADAPTER)
    ctx.use_adapter(DRAG_ADAPTER)
    return lora_parameters(unet, DRAG_ADAPTER)


def drag(ctx: DragContext, p: dict) -> DragOutcome:
    """Run DragLoRA's DOO/ILFA loop at ctx.t and denoise with the drag adapter."""
    unet = ctx.model.unet
    params = start_drag_adapter(ctx, p["lora_rank"])
    try:
        return _drag_and_denoise(ctx, p, params)
    finally:
        ctx.trainable_adapters.discard(DRAG_ADAPTER)
        for param in params:
            param.requires_grad_(False)
        ctx.use_adapter(ctx.recon_adapter)


def _drag_and_denoise(ctx: DragContext, p: dict, params: list[torch.nn.Parameter]) -> DragOutcome:
    runner, t, emb = ctx.runner, ctx.t, ctx.emb
    a_t, a_prev = ctx.alpha_bar(t), ctx.alpha_bar(t - ctx.step_size)
    z = z_original = ctx.z_t
    with torch.no_grad():  # the drag adapter still equals the RecLoRA here; no graph: fp32 in the authors' mode
        eps, f0 = runner.eps_and_features(z, t, emb)
    x_prev_ref = ddim_step(z, eps, a_t, a_prev)
    p0, targets = ctx.handles, ctx.targets
    templates = sample_points(f0, p0)
    use_mask = ctx.has_mask and p["mask_weight"] > 0
    optimizer = torch.optim.AdamW(params, lr=p["lr"])
    scaler = runner.grad_scaler()
    switching = Switching(p)
    handles = p0.clone()
    aim = handles  # where the last DOO step aimed the handles (set by the first one before it is read)
    doo_steps = iteration = 0
    steps = p["drag_steps"]
    while doo_steps < steps:
        ctx.check_cancel()
        graph = not switching.ilfa_only
        with torch.set_grad_enabled(graph):
            eps, feats = runner.eps_and_features(z, t, emb)
        if iteration > 0:
            tracked, min_d = track_points(feats.detach(), templates, handles, targets, p["r2"],
                                          p["tracking_region"], p["angle_deg"])
            handles = switching.update(handles, tracked, min_d, aim)
        iteration += 1
        if all_reached(handles, targets):
            ctx.report("drag", steps, steps, handles, z)
            break
        if switching.ilfa_only:
            switching.ilfa_steps += 1
        else:
            if not graph:
                eps, feats = runner.eps_and_features(z, t, emb)
            loss = motion_loss(feats, handles, targets, p["r1"], reference=f0, reference_points=p0)
            if use_mask:
                loss = loss + mask_loss(ddim_step(z, eps, a_t, a_prev), x_prev_ref, ctx.editable, p["mask_weight"])
            if p["dds_weight"] > 0:
                x0_hat = predict_x0(z, eps, a_t)
                gradient = dds_gradient(runner, ctx.model.scheduler, x0_hat, emb, ctx.generator, ctx.use_adapter,
                                        ctx.recon_adapter, DRAG_ADAPTER)
                loss = loss + dds_loss(x0_hat, gradient, p["dds_weight"])
            runner.step(loss, optimizer, scaler)
            doo_steps += 1
            switching.doo_step_done()
            reached = ((targets - handles).norm(dim=-1, keepdim=True) < 2.0)
            aim = torch.where(reached, targets, handles + motion_directions(handles, targets))
            with torch.no_grad():
                eps = runner.eps(z, t, emb)  # the updated adapter's prediction, for ILFA
        noise = torch.randn(z.shape, generator=ctx.generator, device=ctx.generator.device).to(z.device)
        z = adapt_latent(z, eps.detach(), z_original, a_t, a_prev, ctx.editable, noise)
        ctx.report("drag", doo_steps, steps, handles, z)
    stats = {"doo_steps": doo_steps, "ilfa_only_steps": switching.ilfa_steps,
             "ilfa_only_entries": switching.entries, "keep_backs": switching.keep_backs, "iterations": iteration}
    return DragOutcome(ctx.denoise(z, edit_adapter=DRAG_ADAPTER), handles, stats)
