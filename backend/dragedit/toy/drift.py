"""Which part of a drag's latent change moves the content, and which part only damages the image.

    python -m dragedit.toy.drift move-short-0 --method dragdiffusion [--out DIR]

Runs one toy case through the engine several times with the same seed. Each run drags as usual;
just before the final denoising the dragged latent z is replaced by a variant built from the change
dz = z - z_orig (z_orig: the undragged latent the method denoises beside it):

- ``as dragged``: z itself (the engine's normal output);
- ``undragged``: z_orig (what the denoiser alone does to the image);
- ``random signs``: z_orig + |dz| with random signs (a change as large as the drag's, not aimed);
- ``near points``: z_orig + dz within NEAR_PX image pixels of a handle or target, none elsewhere;
- ``far from points``: z_orig + dz everywhere else.

Each output is scored on the case's ground truth (moved fraction, PSNR outside the edit) and the
strip of pictures is written to --out. The variant is applied by wrapping ``DragContext.denoise`` for
the duration of a run: a diagnostic hook, not an engine option.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from ..engine import DragRequest, Engine, EngineSettings
from ..engine.context import DragContext
from .cases import CASE_SIZE, DragCase, all_cases
from .measure import psnr_db, score_case
from .params import toy_params

NEAR_PX = 32  # image pixels around a handle or target counted as "near the points"
VARIANTS = ("as dragged", "undragged", "random signs", "near points", "far from points")

# (dragged latent, undragged latent, context) -> the latent to denoise instead
LatentVariant = Callable[[torch.Tensor, torch.Tensor, DragContext], torch.Tensor]


@contextmanager
def denoise_instead(variant: LatentVariant) -> Iterator[None]:
    """While active, every DragContext.denoise call denoises ``variant(z, z_orig, ctx)`` instead of z."""
    original = DragContext.denoise

    def denoise(self, z_edited, from_index=None, z_original=None, **kwargs):
        index = self.start if from_index is None else from_index
        undragged = self.trajectory[self.timesteps[index]] if z_original is None else z_original
        return original(self, variant(z_edited, undragged, self), from_index, z_original, **kwargs)

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


def make_variant(name: str, seed: int = 0) -> LatentVariant:
    """The latent transform behind one of VARIANTS."""
    def variant(z: torch.Tensor, z_orig: torch.Tensor, ctx: DragContext) -> torch.Tensor:
        dz = z - z_orig
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
                 names: tuple[str, ...] = VARIANTS) -> dict[str, np.ndarray]:
    """The engine's output image (H x W x 4) for each variant, all with the same seed."""
    request = DragRequest(image=case.image(), points=case.points, method=method, params=params, mask=case.mask(),
                          seed=seed)
    outputs = {}
    for name in names:
        with denoise_instead(make_variant(name, seed)):
            outputs[name] = engine.run(request).image
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dragedit.toy.drift", description=__doc__.split("\n")[0])
    parser.add_argument("case", help="a toy case name (see `dragedit bench quality --json`), e.g. move-short-0")
    parser.add_argument("--method", default="dragdiffusion")
    parser.add_argument("--model", default="toy")
    parser.add_argument("--out", type=Path, default=Path("toy-drift"))
    parser.add_argument("--cache-dir", default=None, help="keep RecLoRAs here (as bench quality --cache-dir)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    cases = {case.name: case for case in all_cases()}
    if args.case not in cases:
        print(f"error: unknown case '{args.case}'. Cases: {', '.join(cases)}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    case = cases[args.case]
    with tempfile.TemporaryDirectory(prefix="dragedit-drift-cache-") as cache:
        engine = Engine(EngineSettings(model=args.model, work_size=CASE_SIZE, cache_dir=args.cache_dir or cache))
        specs = {s["name"]: s for s in engine.describe()["methods"]}
        if args.method not in specs:
            print(f"error: unknown method '{args.method}'. Known methods: {', '.join(specs)}", file=sys.stderr)
            return 2
        outputs = run_variants(engine, case, args.method, toy_params(specs[args.method]))
    image = case.image()
    everywhere = np.ones(image.shape[:2], dtype=bool)
    print(f"{args.case}, {args.method}: {'variant':<16}{'moved':>7}{'PSNR out':>10}{'PSNR all':>10}")
    for name, output in outputs.items():
        score = score_case(case, output)
        print(f"{'':<{len(args.case) + len(args.method) + 4}}{name:<16}{score.moved_fraction:>7.2f}"
              f"{score.psnr_outside_db:>10.1f}{psnr_db(output, image, everywhere):>10.1f}")
    args.out.mkdir(parents=True, exist_ok=True)
    strip = np.concatenate([image[..., :3]] + [o[..., :3] for o in outputs.values()], axis=1)
    path = args.out / f"{args.case}-{args.method}.png"
    Image.fromarray(strip).save(path)
    print(f"pictures (input, then {', '.join(outputs)}): {path.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
