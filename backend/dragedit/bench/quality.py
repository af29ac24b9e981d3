"""`dragedit bench quality`: run the fixed toy drag cases with each method and measure against ground truth.

Per method it prints the mean distance (image pixels) from where the handle content ended up to its
target, the moved fraction (1 - final / initial distance, averaged over cases), the PSNR outside the
editable region against the input, the fraction of cases whose every point ended within
SUCCESS_PX of its target, and the run time. Where the content went is measured by `toy.measure`
(object colour centroid / extent in the output), never with a method's own tracker.

Defaults are each method's published ones, scaled to the toy size (see `toy_params`): the toy model
works at 128 x 128 pixels, so its features are 64 x 64 instead of SD-1.5's 256 x 256 at 512 pixels.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..toy.cases import CASE_SIZE, DragCase, select_cases
from ..toy.measure import SUCCESS_PX, CaseScore, score_case
from ..toy.params import toy_params
from ..toy.pictures import save_case_pictures

@dataclass
class CaseRun:
    """One method on one case: the score, the time and what the method reported."""

    case: DragCase
    score: CaseScore
    seconds: float
    timings: dict[str, float]
    trajectory: list[list[tuple[float, float]]] = field(default_factory=list)
    tracked_handles: list[tuple[float, float]] = field(default_factory=list)  # the method's own final handles

    def tracker_distance_px(self) -> float | None:
        """Mean distance from the method's own final handles to the targets: where it believes it got."""
        if not self.tracked_handles:
            return None
        return float(np.mean([math.dist(handle, target) for handle, (_, target) in
                              zip(self.tracked_handles, self.case.points)]))

    def as_dict(self) -> dict[str, Any]:
        s = self.score
        tracker = self.tracker_distance_px()
        return {
            "case": self.case.name, "kind": self.case.kind, "masked": self.case.masked,
            "points": len(self.case.grabs), "mean_distance_px": round(s.mean_distance_px, 3),
            "initial_distance_px": round(float(np.mean(s.initial_distances_px)), 3),
            "moved_fraction": round(s.moved_fraction, 4), "psnr_outside_db": _rounded_db(s.psnr_outside_db),
            "success": s.success, "seconds": round(self.seconds, 3),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "final_handles": [[round(x, 2), round(y, 2)] for x, y in s.final_handles],
            "tracker_final_handles": [[round(x, 2), round(y, 2)] for x, y in self.tracked_handles],
            "tracker_distance_px": None if tracker is None else round(tracker, 3),
        }


def _rounded_db(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 2)  # JSON has no infinity: null = identical


def _pooled_psnr_db(runs: list[CaseRun]) -> float | None:
    """PSNR of the mean squared error over every case's outside pixels (None: all identical)."""
    pooled = float(np.mean([10 ** (-r.score.psnr_outside_db / 10) for r in runs]))  # relative to 255^2
    return None if pooled == 0 else round(-10 * math.log10(pooled), 2)


def _groups(runs: list[CaseRun]) -> dict[str, list[CaseRun]]:
    """The runs split by whether the case had a mask and by kind (move / stretch)."""
    groups = {"masked": [r for r in runs if r.case.masked], "unmasked": [r for r in runs if not r.case.masked]}
    for kind in ("move", "stretch"):
        groups[kind] = [r for r in runs if r.case.kind == kind]
    return {name: members for name, members in groups.items() if members}


def summarise(runs: list[CaseRun]) -> dict[str, Any]:
    """The per-method numbers, overall and per group (masked / unmasked, move / stretch)."""
    return {
        "cases": len(runs),
        "mean_distance_px": round(float(np.mean([r.score.mean_distance_px for r in runs])), 3),
        "mean_initial_distance_px": round(float(np.mean([np.mean(r.score.initial_distances_px) for r in runs])), 3),
        "moved_fraction": round(float(np.mean([r.score.moved_fraction for r in runs])), 4),
        "psnr_outside_db": _pooled_psnr_db(runs),
        "min_psnr_outside_db": _rounded_db(min(r.score.psnr_outside_db for r in runs)),
        "success_fraction": round(float(np.mean([r.score.success for r in runs])), 4),
        "success_px": SUCCESS_PX,
        "seconds_per_case": round(float(np.mean([r.seconds for r in runs])), 3),
        "seconds_total": round(float(np.sum([r.seconds for r in runs])), 2),
        "groups": {name: {"cases": len(members),
                          "moved_fraction": round(float(np.mean([r.score.moved_fraction for r in members])), 4),
                          "psnr_outside_db": _pooled_psnr_db(members),
                          "success_fraction": round(float(np.mean([r.score.success for r in members])), 4)}
                   for name, members in _groups(runs).items()},
    }


def run_case(engine, case: DragCase, method: str, params: dict[str, Any], seed: int) -> tuple[CaseRun, np.ndarray]:
    """Run one case through the engine as the daemon would; the score and the output image."""
    from ..engine import DragRequest

    trajectory: list[list[tuple[float, float]]] = []

    def on_progress(progress) -> None:
        if progress.phase == "drag" and progress.handles:
            trajectory.append([tuple(map(float, h)) for h in progress.handles])

    request = DragRequest(image=case.image(), points=case.points, method=method, params=params,
                          mask=case.mask(), seed=seed)
    started = time.perf_counter()
    result = engine.run(request, on_progress, lambda: False)
    seconds = time.perf_counter() - started
    return (CaseRun(case, score_case(case, result.image), seconds, dict(result.timings), trajectory,
                    [tuple(map(float, h)) for h in result.handles]), result.image)


def _print_table(summaries: dict[str, dict[str, Any]]) -> None:
    header = f"{'method':<15}{'cases':>6}{'dist px':>9}{'start px':>9}{'moved':>8}{'PSNR out':>10}{'success':>9}{'s/case':>8}"
    print(header)
    print("-" * len(header))
    for method, s in summaries.items():
        psnr = "inf" if s["psnr_outside_db"] is None else f"{s['psnr_outside_db']:.1f}"
        print(f"{method:<15}{s['cases']:>6}{s['mean_distance_px']:>9.2f}{s['mean_initial_distance_px']:>9.2f}"
              f"{s['moved_fraction']:>8.2f}{psnr:>10}{s['success_fraction']:>9.2f}{s['seconds_per_case']:>8.1f}")
    print(f"\n{'method':<15}{'group':<10}{'cases':>6}{'moved':>8}{'PSNR out':>10}{'success':>9}")
    for method, s in summaries.items():
        for name, g in s["groups"].items():
            psnr = "inf" if g["psnr_outside_db"] is None else f"{g['psnr_outside_db']:.1f}"
            print(f"{method:<15}{name:<10}{g['cases']:>6}{g['moved_fraction']:>8.2f}{psnr:>10}{g['success_fraction']:>9.2f}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dragedit bench quality", description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="all", help="a method name, several separated by commas, or 'all' (default)")
    parser.add_argument("--cases", type=int, default=None, help="run only this many cases, spread over all groups")
    parser.add_argument("--out", type=Path, default=Path("dragedit-quality"),
                        help="folder for the per-case pictures (default: ./dragedit-quality)")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers per method (and case) here")
    parser.add_argument("--model", default="toy", help="the model (default: the shipped toy model)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--published", action="store_true", help="use the published defaults unscaled")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter of every method run (repeatable), e.g. --set lora_steps=40")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="keep RecLoRAs and inversions here, so a rerun (or another method with the same LoRA "
                             "settings) skips their training (default: a temporary folder)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (1 is fastest for the toy model on a busy machine)")
    return parser.parse_args(argv)


def _overrides(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set needs NAME=VALUE, got '{pair}'")
        try:
            out[name] = json.loads(value)  # numbers and true/false
        except ValueError:
            out[name] = value
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns a process exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from ..engine import EditError, Engine, EngineSettings

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    overrides = _overrides(args.set)
    cases = select_cases(args.cases)
    with tempfile.TemporaryDirectory(prefix="dragedit-quality-cache-") as cache:
        engine = Engine(EngineSettings(model=args.model, device=args.device, work_size=CASE_SIZE,
                                       cache_dir=str(args.cache_dir or cache)))
        specs = {spec["name"]: spec for spec in engine.describe()["methods"]}
        methods = list(specs) if args.method == "all" else args.method.split(",")
        unknown = [m for m in methods if m not in specs]
        if unknown:
            print(f"error: unknown method '{unknown[0]}'. Known methods: {', '.join(specs)}, or 'all'.", file=sys.stderr)
            return 2
        report: dict[str, Any] = {"model": args.model, "image_size": CASE_SIZE, "success_px": SUCCESS_PX,
                                  "methods": {}}
        summaries = {}
        for method in methods:
            params = {} if args.published else toy_params(specs[method])
            params.update(overrides)
            runs = []
            for case in cases:
                try:
                    run, output = run_case(engine, case, method, params, args.seed)
                except EditError as err:
                    print(f"error: {method} failed on case {case.name}: {err.message} ({err.hint})", file=sys.stderr)
                    return 1
                save_case_pictures(args.out / method, case, output, run.score, run.trajectory)
                runs.append(run)
                print(f"{method:<15} {case.name:<22} moved {run.score.moved_fraction:5.2f}  "
                      f"dist {run.score.mean_distance_px:5.1f} px  PSNR out {run.score.psnr_outside_db:5.1f} dB  "
                      f"{run.seconds:5.1f} s", flush=True)
            summaries[method] = summarise(runs)
            report["methods"][method] = summaries[method] | {"params": params, "per_case": [r.as_dict() for r in runs]}
    print()
    _print_table(summaries)
    print(f"\npictures per case: {args.out.resolve()}/<method>/")
    if args.json:
        save_json(args.json, report)
    return 0


def save_json(path: Path, report: dict[str, Any]) -> None:
    """Write a benchmark's numbers as JSON (creating the folder) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    print(f"numbers: {path.resolve()}")


if __name__ == "__main__":
    raise SystemExit(main())
