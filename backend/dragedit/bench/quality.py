"""`dragedit bench quality`: run the fixed toy drag cases with each method and measure against ground truth.

Per method it prints the mean distance (image pixels) from where the handle content ended up to its
target, the moved fraction (1 - final / initial distance, averaged over cases), the PSNR outside the
editable region against the input, the fraction of cases whose every point ended within
SUCCESS_PX of its target, and the run time. Where the content went is measured by `toy.measure`
(object colour centroid / extent in the output), never with a method's own tracker.

It also reports the papers' measures: the PSNR outside the editable region of the raw output (what
the model decoded, before the engine pastes it into the input: the paste alone makes the other PSNR
high), GoodDrag's Dragging Accuracy Index at the paper's patch radii scaled to the toy size, and with
`--drag-back` DragLoRA's evaluation (drag, drag the result back, PSNR and SSIM against the input).
`--report PAGE.html` writes all of it, with every case's pictures side by side, as one HTML page.

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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..toy.cases import CASE_SIZE, DragCase, all_cases, select_cases
from ..toy.measure import SUCCESS_PX, CaseScore, psnr_db, score_case
from ..toy.metrics import dai, dai_radii, ssim
from ..toy.params import toy_params
from ..toy.pictures import save_case_pictures
from ..toy.report import write_report

DAI_RADII = dai_radii(CASE_SIZE)

@dataclass
class CaseRun:
    """One method on one case: the score, the time and what the method reported."""

    case: DragCase
    score: CaseScore
    seconds: float
    timings: dict[str, float]
    trajectory: list[list[tuple[float, float]]] = field(default_factory=list)
    tracked_handles: list[tuple[float, float]] = field(default_factory=list)  # the method's own final handles
    raw_psnr_outside_db: float = math.inf  # the raw (decoded, not pasted) output outside the editable region
    dai: dict[int, float] = field(default_factory=dict)  # GoodDrag's DAI per patch radius
    drag_back: tuple[float, float] | None = None  # (PSNR dB, SSIM) of the dragged-back output vs the input

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
            "raw_psnr_outside_db": _rounded_db(self.raw_psnr_outside_db),
            "dai": {str(r): round(v, 5) for r, v in self.dai.items()},
        } | ({} if self.drag_back is None else
             {"drag_back": {"psnr_db": _rounded_db(self.drag_back[0]), "ssim": round(self.drag_back[1], 4)}})


def _rounded_db(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 2)  # JSON has no infinity: null = identical


def _pooled_db(values_db: list[float]) -> float | None:
    """PSNR of the mean of the cases' squared errors (None: all identical)."""
    pooled = float(np.mean([10 ** (-v / 10) for v in values_db]))  # relative to 255^2
    return None if pooled == 0 else round(-10 * math.log10(pooled), 2)


def _pooled_psnr_db(runs: list[CaseRun]) -> float | None:
    """PSNR of the mean squared error over every case's outside pixels (None: all identical)."""
    return _pooled_db([r.score.psnr_outside_db for r in runs])


def _pooled_raw_psnr_db(runs: list[CaseRun]) -> float | None:
    """The same for the raw outputs, before the paste back."""
    return _pooled_db([r.raw_psnr_outside_db for r in runs])


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
        "raw_psnr_outside_db": _pooled_raw_psnr_db(runs),
        "dai": {str(radius): round(float(np.mean([r.dai[radius] for r in runs])), 5) for radius in DAI_RADII},
        "success_fraction": round(float(np.mean([r.score.success for r in runs])), 4),
        "success_px": SUCCESS_PX,
        "seconds_per_case": round(float(np.mean([r.seconds for r in runs])), 3),
        "seconds_total": round(float(np.sum([r.seconds for r in runs])), 2),
        "groups": {name: {"cases": len(members),
                          "moved_fraction": round(float(np.mean([r.score.moved_fraction for r in members])), 4),
                          "psnr_outside_db": _pooled_psnr_db(members),
                          "raw_psnr_outside_db": _pooled_raw_psnr_db(members),
                          "success_fraction": round(float(np.mean([r.score.success for r in members])), 4)}
                   for name, members in _groups(runs).items()},
    } | _drag_back_summary(runs)


def _drag_back_summary(runs: list[CaseRun]) -> dict[str, Any]:
    back = [r.drag_back for r in runs if r.drag_back is not None]
    if not back:
        return {}
    return {"drag_back": {"cases": len(back), "psnr_db": _pooled_db([b[0] for b in back]),
                          "ssim": round(float(np.mean([b[1] for b in back])), 4)}}


@contextmanager
def raw_outputs():
    """Collect, per engine run inside the block, the raw output: the model's decoded work image put in
    place of the work region as it is (no blend with the input), before the engine pastes it back.
    (The engine returns only the pasted image; this wraps its paste step and leaves the result alone.)"""
    from ..engine import engine as engine_module
    from ..engine.images import scaled_to_region

    paste = engine_module.paste
    collected: list[np.ndarray] = []

    def paste_and_keep_raw(image, editable, region, edited_work, reference_work, feather):
        raw = image.copy()
        raw[region.y0:region.y1, region.x0:region.x1, :3] = scaled_to_region(edited_work, region)
        collected.append(raw)
        return paste(image, editable, region, edited_work, reference_work, feather)

    engine_module.paste = paste_and_keep_raw
    try:
        yield collected
    finally:
        engine_module.paste = paste


def _drag(engine, image: np.ndarray, points, mask, method: str, params: dict[str, Any], seed: int):
    """One engine run as the daemon would do it: (result, raw output, drag trajectory, seconds)."""
    from ..engine import DragRequest

    trajectory: list[list[tuple[float, float]]] = []

    def on_progress(progress) -> None:
        if progress.phase == "drag" and progress.handles:
            trajectory.append([tuple(map(float, h)) for h in progress.handles])

    request = DragRequest(image=image, points=points, method=method, params=params, mask=mask, seed=seed)
    started = time.perf_counter()
    with raw_outputs() as raw:
        result = engine.run(request, on_progress, lambda: False)
    return result, raw[-1], trajectory, time.perf_counter() - started


def raw_psnr_outside_db(case: DragCase, raw: np.ndarray, region: list[int]) -> float:
    """PSNR of the raw output against the input over the pixels outside the case's editable region
    that lie in the engine's work region (outside it nothing was generated)."""
    x0, y0, x1, y1 = region
    where = ~case.edit_region()
    where[:y0] = False
    where[y1:] = False
    where[:, :x0] = False
    where[:, x1:] = False
    return psnr_db(raw, case.image(), where)


def run_case(engine, case: DragCase, method: str, params: dict[str, Any], seed: int,
             drag_back: bool = False) -> tuple[CaseRun, np.ndarray]:
    """Run one case through the engine as the daemon would; the score and the output image. With
    `drag_back`, also drag the output back from the targets to the handles and compare with the input."""
    image = case.image()
    result, raw, trajectory, seconds = _drag(engine, image, case.points, case.mask(), method, params, seed)
    run = CaseRun(case, score_case(case, result.image), seconds, dict(result.timings), trajectory,
                  [tuple(map(float, h)) for h in result.handles],
                  raw_psnr_outside_db(case, raw, result.stats["region"]),
                  {radius: dai(image, result.image, case.points, radius) for radius in DAI_RADII})
    if drag_back:
        back, *_ = _drag(engine, result.image, [(t, h) for h, t in case.points], case.mask(), method, params, seed)
        run.drag_back = (psnr_db(back.image, image, np.ones(image.shape[:2], bool)), ssim(back.image, image))
    return run, result.image


def _db(value: float | None) -> str:
    return "inf" if value is None else f"{value:.1f}"


def _print_table(summaries: dict[str, dict[str, Any]]) -> None:
    dai_header = "".join(f"{f'DAI r{r}':>9}" for r in DAI_RADII)
    header = (f"{'method':<15}{'cases':>6}{'dist px':>9}{'start px':>9}{'moved':>8}{'PSNR out':>10}{'raw out':>9}"
              f"{dai_header}{'success':>9}{'s/case':>8}")
    print(header)
    print("-" * len(header))
    for method, s in summaries.items():
        dais = "".join(f"{s['dai'][str(r)]:>9.4f}" for r in DAI_RADII)
        print(f"{method:<15}{s['cases']:>6}{s['mean_distance_px']:>9.2f}{s['mean_initial_distance_px']:>9.2f}"
              f"{s['moved_fraction']:>8.2f}{_db(s['psnr_outside_db']):>10}{_db(s['raw_psnr_outside_db']):>9}{dais}"
              f"{s['success_fraction']:>9.2f}{s['seconds_per_case']:>8.1f}")
    print(f"\n{'method':<15}{'group':<10}{'cases':>6}{'moved':>8}{'PSNR out':>10}{'raw out':>9}{'success':>9}")
    for method, s in summaries.items():
        for name, g in s["groups"].items():
            print(f"{method:<15}{name:<10}{g['cases']:>6}{g['moved_fraction']:>8.2f}{_db(g['psnr_outside_db']):>10}"
                  f"{_db(g['raw_psnr_outside_db']):>9}{g['success_fraction']:>9.2f}")
    back = {method: s["drag_back"] for method, s in summaries.items() if "drag_back" in s}
    if back:
        print(f"\n{'method':<15}{'drag-back PSNR':>15}{'SSIM':>8}  (drag, drag back, compare with the input)")
        for method, b in back.items():
            print(f"{method:<15}{_db(b['psnr_db']):>15}{b['ssim']:>8.3f}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dragedit bench quality", description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="all", help="a method name, several separated by commas, or 'all' (default)")
    parser.add_argument("--cases", type=int, default=None, help="run only this many cases, spread over all groups")
    parser.add_argument("--case", action="append", default=None, metavar="NAME",
                        help="run this case (repeatable; e.g. move-short-1-mask), instead of --cases")
    parser.add_argument("--out", type=Path, default=Path("dragedit-quality"),
                        help="folder for the per-case pictures (default: ./dragedit-quality)")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers per method (and case) here")
    parser.add_argument("--report", type=Path, default=None,
                        help="write one HTML page with the tables and every case's pictures side by side")
    parser.add_argument("--drag-back", action="store_true",
                        help="also drag each result back to the handles and compare it with the input "
                             "(DragLoRA's evaluation; doubles the run time)")
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
    known = {case.name: case for case in all_cases()}
    unknown_cases = [name for name in args.case or [] if name not in known]
    if unknown_cases:
        print(f"error: unknown case '{unknown_cases[0]}'. Known cases: {', '.join(known)}.", file=sys.stderr)
        return 2
    cases = [known[name] for name in args.case] if args.case else select_cases(args.cases)
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
                                  "dai_radii": list(DAI_RADII), "methods": {}}
        summaries = {}
        outputs: dict[str, dict[str, np.ndarray]] = {}
        trajectories: dict[str, dict[str, list]] = {}
        for method in methods:
            params = {} if args.published else toy_params(specs[method])
            params.update(overrides)
            runs = []
            outputs[method], trajectories[method] = {}, {}
            for case in cases:
                try:
                    run, output = run_case(engine, case, method, params, args.seed, args.drag_back)
                except EditError as err:
                    print(f"error: {method} failed on case {case.name}: {err.message} ({err.hint})", file=sys.stderr)
                    return 1
                save_case_pictures(args.out / method, case, output, run.score, run.trajectory)
                runs.append(run)
                outputs[method][case.name], trajectories[method][case.name] = output, run.trajectory
                print(f"{method:<15} {case.name:<22} moved {run.score.moved_fraction:5.2f}  "
                      f"dist {run.score.mean_distance_px:5.1f} px  PSNR out {run.score.psnr_outside_db:5.1f} dB  "
                      f"raw {run.raw_psnr_outside_db:5.1f} dB  {run.seconds:5.1f} s", flush=True)
            summaries[method] = summarise(runs)
            report["methods"][method] = summaries[method] | {"params": params, "per_case": [r.as_dict() for r in runs]}
    print()
    _print_table(summaries)
    print(f"\npictures per case: {args.out.resolve()}/<method>/")
    if args.json:
        save_json(args.json, report)
    if args.report:
        write_report(args.report, report, cases, outputs, trajectories)
        print(f"report: {args.report.resolve()}")
    return 0


def save_json(path: Path, report: dict[str, Any]) -> None:
    """Write a benchmark's numbers as JSON (creating the folder) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    print(f"numbers: {path.resolve()}")


if __name__ == "__main__":
    raise SystemExit(main())
