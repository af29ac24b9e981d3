"""Which part of a drag's latent change moves the content, and which part only damages the image.

    python -m dragedit.toy.drift move-short-0 --method dragdiffusion [--out DIR]

Runs one toy case through the engine several times with the same seed. Each run drags as usual;
just before the final denoising the dragged latent z is replaced by a variant built from the change
dz = z - z_orig (z_orig: the undragged latent the method denoises beside it):

- ``as dragged``: z itself (the engine's normal output);
- ``undragged``: z_orig (what the denoiser alone does to the image);
- ``random signs``: z_orig + |dz| with random signs (a change as large as the drag's, not aimed);
- ``near points``: z_orig + dz within NEAR_PX image pixels of a handle or target, none elsewhere;
- ``far from points``: z_orig + dz everywhere else;
- ``ground truth``: z_true, the case's ground-truth image encoded and DDIM-inverted to the same timestep
  as the input was (same RecLoRA): the latent of the object moved, what the denoiser does with it;
- ``aimed part``: z_orig + the projection of dz on dz_true = z_true - z_orig (the part of the drag's
  change that points towards the moved object);
- ``unaimed part``: z_orig + the rest of dz;
- ``content moved``: z_orig with each grabbed object's content translated by its drag and the noise
  left in place (z_t + sqrt(alpha_bar_t) * (z0 translated - z0) over the object's region; move cases
  only): a change as small as a content move can be, which the denoiser shows as the moved object
  from the drag timestep (GoodDrag's final denoising starts lower, where it no longer does).

It also prints how the drag's change compares with the changes that move the object: its norm and
cosine against dz_true and against the content move.

Each output is scored on the case's ground truth (moved fraction, PSNR outside the edit) and the
strip of pictures is written to --out. The variant is applied by wrapping ``DragContext.denoise`` for
the duration of a run: a diagnostic hook, not an engine option.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..engine import DragRequest, Engine, EngineSettings
from ..engine.context import DragContext
from ..engine.inversion import ddim_invert
from ..engine.latents import encode
from .cases import CASE_SIZE, DragCase, all_cases
from .measure import psnr_db, score_case
from .params import toy_params

NEAR_PX = 32  # image pixels around a handle or target counted as "near the points"
VARIANTS = ("as dragged", "undragged", "random signs", "near points", "far from points")
TRUTH_VARIANTS = ("ground truth", "aimed part", "unaimed part", "content moved")

# (dragged latent, undragged latent, context, timestep) -> the latent to denoise instead
LatentVariant = Callable[[torch.Tensor, torch.Tensor, DragContext, int], torch.Tensor]


@contextmanager
def denoise_instead(variant: LatentVariant) -> Iterator[None]:
    """While active, every DragContext.denoise call denoises ``variant(z, z_orig, ctx, t)`` instead of z
    (t: the timestep the denoising starts from)."""
    original = DragContext.denoise

    def denoise(self, z_edited, from_index=None, z_original=None, **kwargs):
        index = self.start if from_index is None else from_index
        t = self.timesteps[index]
        undragged = self.trajectory[t] if z_original is None else z_original
        return original(self, variant(z_edited, undragged, self, t), from_index, z_original, **kwargs)

    DragContext.denoise = denoise
    try:
        yield
    finally:
        DragContext.denoise = original


def near_points(ctx: DragContext, shape: torch.Size, radius_px: float = NEAR_PX) -> torch.Tensor:
    """Latent-resolution boolean map: within ``radius_px`` image pixels of a handle or target.

    The context's points are at feature resolution (half the working image); the working image is the
    case itself here (work size = case size, no crop).
    """
    height, width = shape[-2:]
    per_feature_px = width / ctx.runner.feature_size[1]  # latent pixels per feature pixel
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    radius = radius_px / 2 * per_feature_px
    near = torch.zeros(height, width, dtype=torch.bool)
    for point in torch.cat([ctx.handles, ctx.targets]).cpu():
        x, y = (point * per_feature_px).tolist()
        near |= (xs - x) ** 2 + (ys - y) ** 2 <= radius ** 2
    return near.to(ctx.z0.device)


def true_latent(ctx: DragContext, expected_rgb: np.ndarray, t: int) -> torch.Tensor:
    """The ground-truth image's latent at timestep t: encoded and DDIM-inverted as the engine inverts
    the input (its RecLoRA active, the same prompt embedding, the same timesteps)."""
    z0 = encode(ctx.model.vae, expected_rgb, ctx.z0.device).mean
    up = [step for step in reversed(ctx.timesteps) if step <= t]
    ctx.use_adapter(ctx.recon_adapter)
    return ddim_invert(ctx.runner, ctx.model.scheduler, z0, ctx.emb, up)[t]


def content_change(z0: torch.Tensor, case: DragCase, step_px: float | None = None) -> torch.Tensor:
    """Each grabbed object's clean latent z0 translated by its drag (or by ``step_px`` image pixels
    along it), minus z0, over that object's edit region; zero elsewhere. Only for cases that move
    whole objects (a stretch is not a translation)."""
    if case.kind != "move":
        raise ValueError(f"a content move needs a case that moves whole objects, not '{case.name}'")
    height, width = z0.shape[-2:]
    per_latent_px = case.scene.size / width
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    change = torch.zeros_like(z0)
    for shape in dict.fromkeys(g.shape for g in case.grabs):  # each object once, by its first grab
        grab = next(g for g in case.grabs if g.shape == shape)
        move = np.subtract(grab.target, grab.handle)
        if step_px is not None:
            move = move / np.linalg.norm(move) * step_px
        dx, dy = (move / per_latent_px).tolist()
        grid = torch.stack([(xs - dx + 0.5) / width * 2 - 1, (ys - dy + 0.5) / height * 2 - 1], dim=-1)[None]
        moved = F.grid_sample(z0, grid.to(z0), mode="bilinear", padding_mode="border", align_corners=False)
        region = torch.from_numpy(case.edit_region({shape})).float()[None, None]
        region = (F.interpolate(region, size=(height, width), mode="area") > 0).to(z0)
        change = change * (1 - region) + (moved - z0) * region
    return change


def content_moved(ctx: DragContext, case: DragCase, z_t: torch.Tensor, t: int) -> torch.Tensor:
    """The input's latent z_t at t with each grabbed object's content moved by its drag and the noise
    left in place: z_t + sqrt(alpha_bar_t) * content_change(z0, case)."""
    return z_t + ctx.alpha_bar(t).sqrt().to(z_t) * content_change(ctx.z0, case)


@dataclass
class ChangeComparison:
    """The drag's change dz against the change to the ground truth's latent (dz_true) and against the
    content move (dz_content, None for a stretch): latent norms and cosines."""

    norm: float
    true_norm: float
    cosine_true: float
    cosine_true_editable: float  # over the editable region only (the selection, or all of it)
    content_norm: float | None
    cosine_content: float | None


def compare_changes(dz: torch.Tensor, dz_true: torch.Tensor, dz_content: torch.Tensor | None,
                    editable: torch.Tensor) -> ChangeComparison:
    """How much of the drag's change points towards the moved object."""
    def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(F.cosine_similarity(a.flatten(), b.flatten(), dim=0))

    inside = editable.to(dz).expand_as(dz)
    content = (None, None) if dz_content is None else (float(dz_content.norm()), cosine(dz, dz_content))
    return ChangeComparison(float(dz.norm()), float(dz_true.norm()), cosine(dz, dz_true),
                            cosine(dz * inside, dz_true * inside), *content)


def make_variant(name: str, seed: int = 0, case: DragCase | None = None,
                 comparisons: list[ChangeComparison] | None = None) -> LatentVariant:
    """The latent transform behind one of VARIANTS or TRUTH_VARIANTS (these need the ``case``; each of
    their calls appends its ChangeComparison to ``comparisons``)."""
    def variant(z: torch.Tensor, z_orig: torch.Tensor, ctx: DragContext, t: int) -> torch.Tensor:
        dz = z - z_orig
        if name in TRUTH_VARIANTS:
            if case is None:
                raise ValueError(f"variant '{name}' needs the case and its ground truth")
            z_true = true_latent(ctx, case.expected_image()[..., :3], t)
            wanted = case.kind == "move" or name == "content moved"  # (the latter raises for a stretch)
            z_content = content_moved(ctx, case, z_orig, t) if wanted else None
            if comparisons is not None:
                dz_content = None if z_content is None else z_content - z_orig
                comparisons.append(compare_changes(dz, z_true - z_orig, dz_content, ctx.editable))
            if name == "content moved":
                return z_content
            dz_true = z_true - z_orig
            aimed = (dz * dz_true).sum() / dz_true.pow(2).sum().clamp_min(1e-12) * dz_true
            return {"ground truth": z_true, "aimed part": z_orig + aimed, "unaimed part": z - aimed}[name]
        if name == "as dragged":
            return z
        if name == "undragged":
            return z_orig
        if name == "random signs":
            signs = torch.randint(0, 2, dz.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
            return z_orig + dz.abs() * signs.to(dz)
        near = near_points(ctx, dz.shape)
        if name == "near points":
            return z_orig + dz * near
        if name == "far from points":
            return z_orig + dz * ~near
        raise ValueError(f"unknown variant '{name}'")
    return variant


def run_variants(engine: Engine, case: DragCase, method: str, params: dict, seed: int = 0,
                 names: tuple[str, ...] = VARIANTS,
                 comparisons: list[ChangeComparison] | None = None) -> dict[str, np.ndarray]:
    """The engine's output image (H x W x 4) for each variant, all with the same seed; the truth
    variants append to ``comparisons`` (one per denoise call of each)."""
    request = DragRequest(image=case.image(), points=case.points, method=method, params=params, mask=case.mask(),
                          seed=seed)
    outputs = {}
    for name in names:
        with denoise_instead(make_variant(name, seed, case, comparisons)):
            outputs[name] = engine.run(request).image
    return outputs


def default_variants(case: DragCase) -> tuple[str, ...]:
    """Every variant that applies to the case (a content move only where whole objects move)."""
    return tuple(name for name in VARIANTS + TRUTH_VARIANTS if case.kind == "move" or name != "content moved")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dragedit.toy.drift", description=__doc__.split("\n")[0])
    parser.add_argument("case", help="a toy case name (see `dragedit bench quality --json`), e.g. move-short-0")
    parser.add_argument("--method", default="dragdiffusion")
    parser.add_argument("--model", default="toy")
    parser.add_argument("--out", type=Path, default=Path("toy-drift"))
    parser.add_argument("--cache-dir", default=None, help="keep RecLoRAs here (as bench quality --cache-dir)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated, from: " + ", ".join(VARIANTS + TRUTH_VARIANTS)
                        + " (default: all that apply to the case)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    cases = {case.name: case for case in all_cases()}
    if args.case not in cases:
        print(f"error: unknown case '{args.case}'. Cases: {', '.join(cases)}", file=sys.stderr)
        return 2
    case = cases[args.case]
    if args.variants is None:
        names = default_variants(case)
    else:
        names = tuple(name.strip() for name in args.variants.split(","))
    unknown = [name for name in names if name not in VARIANTS + TRUTH_VARIANTS]
    if unknown:
        print(f"error: unknown variant '{unknown[0]}'. Variants: {', '.join(VARIANTS + TRUTH_VARIANTS)}",
              file=sys.stderr)
        return 2
    inapplicable = [name for name in names if name not in default_variants(case)]
    if inapplicable:
        print(f"error: variant '{inapplicable[0]}' needs a case that moves whole objects; '{case.name}' stretches",
              file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="dragedit-drift-cache-") as cache:
        engine = Engine(EngineSettings(model=args.model, work_size=CASE_SIZE, cache_dir=args.cache_dir or cache))
        specs = {s["name"]: s for s in engine.describe()["methods"]}
        if args.method not in specs:
            print(f"error: unknown method '{args.method}'. Known methods: {', '.join(specs)}", file=sys.stderr)
            return 2
        comparisons: list[ChangeComparison] = []
        outputs = run_variants(engine, case, args.method, toy_params(specs[args.method]), names=names,
                               comparisons=comparisons)
    image = case.image()
    everywhere = np.ones(image.shape[:2], dtype=bool)
    print(f"{args.case}, {args.method}: {'variant':<16}{'moved':>7}{'PSNR out':>10}{'PSNR all':>10}")
    for name, output in outputs.items():
        score = score_case(case, output)
        print(f"{'':<{len(args.case) + len(args.method) + 4}}{name:<16}{score.moved_fraction:>7.2f}"
              f"{score.psnr_outside_db:>10.1f}{psnr_db(output, image, everywhere):>10.1f}")
    if comparisons:  # the same drag under each truth variant: its last denoise is the final one
        last = comparisons[-1]
        print(f"the drag's change dz: |dz| {last.norm:.2f}; against the change to the ground truth's latent: "
              f"|dz_true| {last.true_norm:.2f}, cosine {last.cosine_true:.3f} "
              f"(editable region {last.cosine_true_editable:.3f})")
        if last.content_norm is not None:
            print(f"  against the content move: |dz_content| {last.content_norm:.2f}, "
                  f"cosine {last.cosine_content:.3f}")
    args.out.mkdir(parents=True, exist_ok=True)
    strip = np.concatenate([image[..., :3]] + [o[..., :3] for o in outputs.values()], axis=1)
    path = args.out / f"{args.case}-{args.method}.png"
    Image.fromarray(strip).save(path)
    print(f"pictures (input, then {', '.join(outputs)}): {path.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
