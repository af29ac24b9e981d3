"""`dragedit bench paste`: how sharp a drag's result stays where the edit changed nothing.

A large layer (default 3000 x 2000) full of fine detail gets a large selection (default 1500 x 1000)
and one short drag in its middle. The engine works on that region scaled down to the model's
working size and pastes the result back at full size. Measured against the input, over the selected
pixels farther than --away px from the handle and the target (where the drag should change nothing):
PSNR (dB) and gradient energy (mean squared difference of neighbouring pixels) of the output as a
fraction of the input's: 1.0 = as sharp as the input, a blurred paste gives much less.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .quality import _overrides, save_json


def detailed_picture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An H x W x 4 RGBA picture with detail at every scale: gradients, shapes, stripes and grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([90 + 80 * x / width, 70 + 90 * y / height, 150 - 60 * (x + y) / (width + height)], axis=-1)
    for _ in range(40):  # shapes of many sizes
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(10, height / 6)
        rgb[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(20, 235, 3)
    stripes = 18 * np.sin(x * 2.1 + np.sin(y * 0.05) * 3) * np.sin(y * 1.7)  # periods of 3 to 4 px
    grain = rng.normal(0, 10, (height, width, 3))
    rgba = np.empty((height, width, 4), np.uint8)
    rgba[..., :3] = np.clip(rgb + stripes[..., None] + grain, 0, 255)
    rgba[..., 3] = 255
    return rgba


def gradient_energy(rgb: np.ndarray, where: np.ndarray) -> float:
    """Mean squared difference between horizontally and vertically neighbouring pixels inside ``where``."""
    f = rgb.astype(np.float64)
    dx = (f[:, 1:] - f[:, :-1]) ** 2
    dy = (f[1:] - f[:-1]) ** 2
    both = where[:, 1:] & where[:, :-1]
    vert = where[1:] & where[:-1]
    return float((dx[both].sum() + dy[vert].sum()) / max(1, both.sum() + vert.sum()))


def psnr_db(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    mse = float(np.mean((a[where].astype(np.float64) - b[where].astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def away_from_points(mask: np.ndarray, points: list, distance: float) -> np.ndarray:
    """The mask's pixels farther than ``distance`` from every handle and target."""
    height, width = mask.shape
    y, x = np.mgrid[0:height, 0:width]
    away = mask.copy()
    for pair in points:
        for px, py in pair:
            away &= (x - px) ** 2 + (y - py) ** 2 > distance ** 2
    return away


def measure(source: np.ndarray, output: np.ndarray, away: np.ndarray) -> dict[str, float]:
    """PSNR and gradient-energy ratio of the output against the source over ``away``."""
    src, out = source[..., :3], output[..., :3]
    return {"psnr_away_db": round(psnr_db(src, out, away), 2),
            "gradient_energy_ratio": round(gradient_energy(out, away) / gradient_energy(src, away), 4)}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns a process exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from ..engine import DragRequest, EditError, Engine, EngineSettings
    from ..toy.params import toy_params

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    width, height = args.size
    sel_w, sel_h = args.selection
    if sel_w > width or sel_h > height:
        print(f"error: the selection {sel_w}x{sel_h} does not fit in the {width}x{height} layer", file=sys.stderr)
        return 2
    image = detailed_picture(width, height, args.seed)
    mask = np.zeros((height, width), np.uint8)
    x0, y0 = (width - sel_w) // 2, (height - sel_h) // 2
    mask[y0:y0 + sel_h, x0:x0 + sel_w] = 255
    cx, cy = width / 2, height / 2
    points = [((cx, cy), (cx + sel_w * args.drag, cy))]
    away = away_from_points(mask > 0, points, args.away)
    with tempfile.TemporaryDirectory(prefix="dragedit-paste-cache-") as cache:
        engine = Engine(EngineSettings(model=args.model, device=args.device, work_size=args.work_size, cache_dir=cache))
        specs = {spec["name"]: spec for spec in engine.describe()["methods"]}
        if args.method not in specs:
            print(f"error: unknown method '{args.method}'. Known methods: {', '.join(specs)}.", file=sys.stderr)
            return 2
        params = toy_params(specs[args.method]) if args.model == "toy" else {}
        params.update(_overrides(args.set))
        request = DragRequest(image=image, points=points, method=args.method, params=params, mask=mask,
                              seed=args.seed)
        started = time.perf_counter()
        try:
            result = engine.run(request)
        except EditError as err:
            print(f"error: the drag failed: {err.message} ({err.hint})", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - started
    report: dict[str, Any] = {
        "model": args.model, "method": args.method, "params": params, "layer": [width, height],
        "selection": [sel_w, sel_h], "points": points, "away_px": args.away,
        "region": result.stats.get("region"), "work_size": result.stats.get("work_size"),
        **measure(image, result.image, away), "seconds": round(seconds, 2),
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
    }
    work = report["work_size"]
    print(f"{args.method} on a {width}x{height} layer, {sel_w}x{sel_h} selection, region {report['region']} "
          f"worked at {work[0]}x{work[1]}: away from the points (> {args.away:g} px) "
          f"PSNR {report['psnr_away_db']} dB, gradient energy {report['gradient_energy_ratio']:.3f} of the input's; "
          f"{seconds:.1f} s")
    if args.out:
        from PIL import Image

        args.out.mkdir(parents=True, exist_ok=True)
        box = (slice(y0, y0 + 256), slice(x0, x0 + 256))  # a corner of the selection, far from the points
        Image.fromarray(np.concatenate([image[box], result.image[box]], axis=1)).save(args.out / "corner.png")
        print(f"input | output, a 256 px corner of the selection: {(args.out / 'corner.png').resolve()}")
    if args.json:
        save_json(args.json, report)
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 3000x2000, not '{text}'")
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"a size must be positive, not '{text}'")
    return w, h


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dragedit bench paste", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=_size, default=(3000, 2000), help="layer WIDTHxHEIGHT (default 3000x2000)")
    parser.add_argument("--selection", type=_size, default=(1500, 1000),
                        help="centred selection WIDTHxHEIGHT (default 1500x1000)")
    parser.add_argument("--drag", type=float, default=0.05,
                        help="drag length as a fraction of the selection's width (default 0.05)")
    parser.add_argument("--away", type=float, default=250.0,
                        help="measure only pixels farther than this from the points (default 250 px)")
    parser.add_argument("--method", default="dragdiffusion", help="the drag method (default dragdiffusion)")
    parser.add_argument("--model", default="toy", help="the model (default: the shipped toy model)")
    parser.add_argument("--work-size", type=int, default=None, help="the model's working size (default: its native)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter (repeatable), e.g. --set drag_steps=10")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="save a crop of input | output here (a folder)")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
