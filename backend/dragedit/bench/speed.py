"""``dragedit bench speed``: the time of every phase of a first and a repeated drag, per method.

For each method a fresh engine (empty caches in a temporary folder) drags one synthetic image; the
same request is then repeated, which is served from the caches (RecLoRA, inversion, the per-image
derived values, the original row's mutual-attention keys/values) and goes straight to the drag loop.
Every run reports the phases (load, lora, inversion, drag, denoise incl. VAE decode, other =
encode/crop/paste), the end-to-end wall time, the process CPU time (with one thread, the figure that
other work on a shared machine does not inflate), the UNet forward, feature-only forward and
backward counts, the cache hits and the peak memory during the run (CPU resident set; GPU allocated
and reserved on a GPU). Before the methods, a full UNet pass and a feature-only pass (stopping after
up_blocks[2]) are timed alone and inside a gradient step. Phase times come from the engine, which
synchronises a GPU at each phase boundary.

Models: ``tiny`` (a few MB, built once), ``sd15-random`` (the real SD-1.5 architecture with random
weights, about 4 GB in fp32, built once when first asked for: timing and memory do not depend on the
weight values), ``toy`` (the shipped model) or a path to a diffusers folder / .safetensors file.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ..cli import PRECISION_HELP, PRECISION_MODES

PHASES = ("load", "lora", "inversion", "drag", "denoise")
COUNTS = ("unet_forward", "unet_feature_forward", "unet_backward")
BUILT_MODELS = {"tiny": "tiny", "sd15-random": "sd15"}  # --model name -> build_random_model layout
EXIT_FAILED, EXIT_USAGE = 1, 2


class BenchUsageError(Exception):
    """A bad option; the message says what to write instead."""


# ---------------------------------------------------------------------------- options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dragedit bench speed",
        description="Time each phase of a first and a repeated drag of the same image, per method, "
                    "with UNet pass counts and peak memory.")
    parser.add_argument("--method", default="all", help="'all' (default) or method names separated by commas")
    parser.add_argument("--model", default="tiny",
                        help="tiny (default), sd15-random (builds ~4 GB once), toy, or a diffusers folder / .safetensors")
    parser.add_argument("--size", type=int, default=None,
                        help="working size in pixels (default: the model's native size, 64 for tiny, 512 for SD-1.5)")
    parser.add_argument("--repeat", type=int, default=1, help="repeated drags of the same image after the first (default 1)")
    parser.add_argument("--param", action="append", default=[], metavar="[METHOD.]K=V",
                        help="override a method parameter (all methods that have it, or one with METHOD.); repeatable")
    parser.add_argument("--prepared", action="store_true",
                        help="also time a prepared first drag: a fresh engine prepares the image (as a plug-in does "
                             "while the artist places points), then drags it")
    parser.add_argument("--no-mask", action="store_true",
                        help="drag without a selection (the default region around the points)")
    parser.add_argument("--seed", type=int, default=0, help="the drag's random seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", "--dtype", dest="precision", default="auto", choices=PRECISION_MODES,
                        help=PRECISION_HELP)
    parser.add_argument("--vae", default=None, help="a VAE instead of the model's own (hub id, folder, .safetensors)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: stable numbers on a shared machine; 0 = torch's default)")
    parser.add_argument("--pass-repeat", type=int, default=10,
                        help="timed repetitions of the single-pass measurement (0 skips it; default 10)")
    parser.add_argument("--passes-only", action="store_true", help="only the single-pass measurement, no drags")
    parser.add_argument("--models-dir", default=None,
                        help="where tiny and sd15-random are built (default: <DragEdit data folder>/bench-models)")
    parser.add_argument("--json", dest="json_path", default=None, metavar="PATH", help="also write the results as JSON")
    return parser


def parse_value(text: str) -> Any:
    """A parameter value: JSON (numbers, true/false) or else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def method_params(methods: list[str], overrides: list[str]) -> dict[str, dict[str, Any]]:
    """Per method, the --param overrides that apply to it (validated against its schema)."""
    from ..engine.api import EditError
    from ..methods import METHODS

    out: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BenchUsageError(f"--param '{item}' is not NAME=VALUE; write e.g. --param lora_steps=10")
        scope, _, key = name.rpartition(".")
        if scope:
            if scope not in out:
                raise BenchUsageError(f"--param '{item}' names method '{scope}', which is not benchmarked; "
                                      f"benchmarked: {', '.join(methods)}")
            out[scope][key] = parse_value(value)
            continue
        takers = [m for m in methods if key in {p.name for p in METHODS[m].SPEC.params}]
        if not takers:
            raise BenchUsageError(f"no benchmarked method has a parameter '{key}'; see 'dragedit status' for the schemas")
        for m in takers:
            out[m][key] = parse_value(value)
    for m, given in out.items():
        try:
            METHODS[m].SPEC.resolve(given)
        except EditError as exc:
            raise BenchUsageError(f"{m}: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")) from None
    return out


def select_methods(names: str) -> list[str]:
    """The methods named by --method: 'all' or a comma-separated list."""
    from ..methods import METHODS

    if names == "all":
        return list(METHODS)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in METHODS]
    if unknown or not chosen:
        raise BenchUsageError(f"unknown method '{', '.join(unknown) or names}'; choose 'all' or from: {', '.join(METHODS)}")
    return chosen


def resolve_model(name: str, models_dir: Path) -> str:
    """The model source for --model: builds tiny / sd15-random once into models_dir."""
    if name in BUILT_MODELS:
        folder = models_dir / name
        if not (folder / "model_index.json").is_file():
            build_model(folder, BUILT_MODELS[name])
        return str(folder)
    if name == "toy":
        return "toy"
    path = Path(name).expanduser()
    if not path.exists():
        raise BenchUsageError(f"the model '{name}' is neither tiny, sd15-random, toy nor an existing folder or file; "
                              "give a diffusers folder or a .safetensors checkpoint")
    return str(path)


def build_model(folder: Path, layout: str) -> None:
    """Build a random model into a temporary sibling, then rename it into place (no half folders)."""
    import shutil

    from ..engine.models import build_random_model

    if layout == "sd15":
        print(f"building the random SD-1.5 model into {folder} (about 4 GB, once)...", file=sys.stderr, flush=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        build_random_model(staging, layout=layout)
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


# ---------------------------------------------------------------------------- the drag request


def bench_request(size: int, method: str, params: dict[str, Any], seed: int, masked: bool):
    """A synthetic size x size picture (a disc on a gradient), one drag of the disc's edge, a box selection."""
    import numpy as np

    from ..engine.api import DragRequest

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    rgb = np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.8 - 0.5 * xx], axis=-1)
    disc = (xx - 0.35) ** 2 + (yy - 0.5) ** 2 < 0.15 ** 2
    rgb[disc] = (0.9, 0.4, 0.1)
    image = np.empty((size, size, 4), np.uint8)
    image[..., :3] = (rgb * 255).round().astype(np.uint8)
    image[..., 3] = 255
    mask = None
    if masked:
        mask = np.zeros((size, size), np.uint8)
        mask[size // 4: 3 * size // 4, size // 8: 7 * size // 8] = 255
    points = [((0.5 * (size - 1), 0.5 * (size - 1)), (0.65 * (size - 1), 0.5 * (size - 1)))]
    return DragRequest(image=image, points=points, method=method, params=dict(params), mask=mask, seed=seed)


# ---------------------------------------------------------------------------- measuring


class PeakMemory:
    """Peak memory between reset() and read(): CPU resident set, and GPU allocated/reserved on a GPU."""

    STATUS = Path("/proc/self/status")
    CLEAR_REFS = Path("/proc/self/clear_refs")

    def __init__(self, device):
        self.device = device
        self.cpu_peak_resets = self.CLEAR_REFS.exists()

    def reset(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        if self.cpu_peak_resets:
            try:
                self.CLEAR_REFS.write_text("5")  # Linux: resets the peak resident set (VmHWM)
            except OSError:
                self.cpu_peak_resets = False

    def read(self) -> dict[str, int]:
        import torch

        out = {"cpu_rss_peak_bytes": self._cpu_peak()}
        if self.device.type == "cuda":
            out["gpu_allocated_peak_bytes"] = torch.cuda.max_memory_allocated(self.device)
            out["gpu_reserved_peak_bytes"] = torch.cuda.max_memory_reserved(self.device)
        return out

    def _cpu_peak(self) -> int:
        try:
            for line in self.STATUS.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        import resource  # the process's lifetime peak where /proc is not there

        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_once(engine, request, label: str, memory: PeakMemory) -> dict[str, Any]:
    """One Engine.run, measured: phase times, wall time, pass counts, cache hits, peak memory."""
    derived_hits, reference_hits = engine.memo_memory.hits, engine.reference_memory.hits
    memory.reset()
    clock, cpu_clock = time.perf_counter(), time.process_time()
    result = engine.run(request)
    synchronize(memory.device)
    wall, cpu = time.perf_counter() - clock, time.process_time() - cpu_clock
    phases = {p: float(result.timings.get(p, 0.0)) for p in PHASES}
    phases["other"] = max(0.0, wall - sum(phases.values()))
    hits = dict(result.cache_hits)
    hits["derived"] = engine.memo_memory.hits > derived_hits
    hits["reference"] = engine.reference_memory.hits > reference_hits
    stats = {k: v for k, v in result.stats.items() if k not in COUNTS and k not in ("region", "work_size")}
    return {
        "run": label, "phases": phases, "total": wall, "edit": wall - phases["load"], "cpu_time": cpu,
        "counts": {k: int(result.stats.get(k, 0)) for k in COUNTS}, "cache_hits": hits,
        "memory": memory.read(), "method_stats": stats, "work_size": result.stats.get("work_size"),
    }


def bench_method(method: str, settings_for: Callable[[str], Any], request, repeats: int, device,
                 prepared: bool = False) -> dict[str, Any]:
    """A first drag on a fresh engine (empty caches, model not loaded), then ``repeats`` drags of the same request;
    with ``prepared``, then a first drag on another fresh engine that prepared the image beforehand."""
    from ..engine import Engine

    with tempfile.TemporaryDirectory(prefix="dragedit-bench-") as cache:
        engine = Engine(settings_for(cache))
        memory = PeakMemory(device)
        runs = []
        try:
            for i in range(repeats + 1):
                label = "first" if i == 0 else f"repeat {i}"
                runs.append(run_once(engine, request, label, memory))
                print(f"  {method} {label}: {runs[-1]['total']:.2f} s", file=sys.stderr, flush=True)
        finally:
            del engine
            release_device_memory()
    repeat_edit = [r["edit"] for r in runs[1:]]
    summary: dict[str, Any] = {"runs": runs}
    if repeat_edit:
        median = statistics.median(repeat_edit)
        summary["repeat_speedup"] = runs[0]["edit"] / median if median > 0 else None
        summary["repeat_speedup_with_load"] = runs[0]["total"] / statistics.median(r["total"] for r in runs[1:])
        summary["repeat_speedup_cpu"] = runs[0]["cpu_time"] / statistics.median(r["cpu_time"] for r in runs[1:])
    if prepared:
        summary["prepared"] = bench_prepared(method, settings_for, request, device)
        if repeat_edit:
            summary["prepared_vs_repeat"] = summary["prepared"]["run"]["edit"] / statistics.median(repeat_edit)
    return summary


def bench_prepared(method: str, settings_for: Callable[[str], Any], request, device) -> dict[str, Any]:
    """A fresh engine loads the model and prepares the image (untimed as a drag: the artist is still placing
    points), then drags it: the time from Drag to result of a prepared first drag."""
    from ..engine import Engine
    from ..engine.api import PrepareRequest

    with tempfile.TemporaryDirectory(prefix="dragedit-bench-") as cache:
        engine = Engine(settings_for(cache))
        try:
            engine.ensure_model()
            clock = time.perf_counter()
            engine.prepare(PrepareRequest(image=request.image, mask=request.mask, method=request.method,
                                          params=request.params, prompt=request.prompt))
            synchronize(device)
            prepare_s = time.perf_counter() - clock
            run = run_once(engine, request, "prepared", PeakMemory(device))
            print(f"  {method} prepared (after {prepare_s:.2f} s of preparing): {run['total']:.2f} s",
                  file=sys.stderr, flush=True)
        finally:
            del engine
            release_device_memory()
    return {"prepare_s": prepare_s, "run": run}


def release_device_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def time_pair(full: Callable[[], Any], only: Callable[[], Any], device, repeat: int) -> dict[str, Any]:
    """Time two calls alternately (so drifting load and allocator state hit both alike) after a warm-up of each.

    Returns, per call, the median and minimum wall seconds and the median process CPU seconds, and
    how much cheaper ``only`` is than ``full`` in wall and in CPU time.
    """
    calls = {"full": full, "feature_only": only}
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in calls}
    for fn in calls.values():
        fn()
    for _ in range(repeat):
        for name, fn in calls.items():
            synchronize(device)
            clock, cpu_clock = time.perf_counter(), time.process_time()
            fn()
            synchronize(device)
            samples[name][0].append(time.perf_counter() - clock)
            samples[name][1].append(time.process_time() - cpu_clock)
    out: dict[str, Any] = {name: {"median_s": statistics.median(wall), "min_s": min(wall),
                                  "cpu_median_s": statistics.median(cpu)} for name, (wall, cpu) in samples.items()}
    out["saving"] = 1 - out["feature_only"]["median_s"] / out["full"]["median_s"]
    out["cpu_saving"] = 1 - out["feature_only"]["cpu_median_s"] / out["full"]["cpu_median_s"]
    return out


def bench_passes(model, size: int, repeat: int) -> dict[str, Any]:
    """A full UNet pass against a feature-only pass, alone (no gradient) and in a drag step (with backward)."""
    import torch

    from ..engine.features import UNetRunner

    side = size // model.vae_scale_factor
    generator = torch.Generator(device="cpu").manual_seed(0)
    z = torch.randn(1, model.unet.config.in_channels, side, side, generator=generator).to(model.device)
    emb = model.encode_prompt("")
    runner = UNetRunner(model.unet, (size // 2, size // 2))
    t = 681

    def step(full: bool) -> None:
        latent = z.clone().requires_grad_(True)
        feats = runner.eps_and_features(latent, t, emb)[1] if full else runner.features(latent, t, emb)
        feats[..., :8, :8].abs().mean().backward()  # a patch loss, as in motion supervision

    try:
        with torch.no_grad():
            forward = time_pair(lambda: runner.eps_and_features(z, t, emb), lambda: runner.features(z, t, emb),
                                model.device, repeat)
        drag_step = time_pair(lambda: step(True), lambda: step(False), model.device, repeat)
    finally:
        runner.close()
    return {"latent_size": side, "timestep": t, "repeat": repeat, "forward": forward, "forward_backward": drag_step}


# ---------------------------------------------------------------------------- output


def gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f}"


def format_report(report: dict[str, Any]) -> str:
    """The results as plain-text tables."""
    env = report["environment"]
    lines = [f"dragedit bench speed: model {env['model']} on {env['device']} ({env['device_name']}), "
             f"precision {env['precision']} ({env['dtype']} weights), "
             f"size {env['size']}, torch {env['torch']}, threads {env['threads']}, load average {env['load_average']}"]
    passes = report.get("passes")
    if passes:
        lines.append(f"\nUNet pass at latent {passes['latent_size']}x{passes['latent_size']}, median of {passes['repeat']} (ms)"
                     f"{'wall: full':>16}{'feature-only':>14}{'saving':>8}{'CPU: full':>12}{'feature-only':>14}{'saving':>8}")
        for kind, title in (("forward", "forward (no gradient)"), ("forward_backward", "forward + backward (drag step)")):
            row, full, only = passes[kind], passes[kind]["full"], passes[kind]["feature_only"]
            lines.append(f"  {title:<42}{full['median_s'] * 1e3:>16.1f}{only['median_s'] * 1e3:>14.1f}"
                         f"{row['saving'] * 100:>7.0f}%{full['cpu_median_s'] * 1e3:>12.1f}"
                         f"{only['cpu_median_s'] * 1e3:>14.1f}{row['cpu_saving'] * 100:>7.0f}%")
    gpu = env["device"].startswith("cuda")
    header = (f"\n{'method':<14}{'run':<10}" + "".join(f"{p:>10}" for p in PHASES + ("other",))
              + f"{'total s':>10}{'cpu s':>8}{'fwd':>6}{'feat':>6}{'bwd':>6}{'RSS GiB':>9}" + (f"{'GPU GiB':>9}" if gpu else "")
              + "  cached")
    if report["methods"]:
        lines.append(header)
    for method, summary in report["methods"].items():
        for run in summary["runs"] + ([summary["prepared"]["run"]] if "prepared" in summary else []):
            phases = "".join(f"{run['phases'][p]:>10.2f}" for p in PHASES + ("other",))
            counts = "".join(f"{run['counts'][c]:>6}" for c in COUNTS)
            memory = f"{gib(run['memory']['cpu_rss_peak_bytes']):>9}"
            if gpu:
                memory += f"{gib(run['memory'].get('gpu_allocated_peak_bytes')):>9}"
            cached = ",".join(k for k, hit in run["cache_hits"].items() if hit) or "-"
            lines.append(f"{method:<14}{run['run']:<10}{phases}{run['total']:>10.2f}{run['cpu_time']:>8.2f}{counts}{memory}  {cached}")
        if summary.get("repeat_speedup"):
            lines.append(f"{'':<14}repeated drag {summary['repeat_speedup']:.1f}x faster than the first "
                         f"({summary['repeat_speedup_with_load']:.1f}x counting the model load; "
                         f"{summary['repeat_speedup_cpu']:.1f}x in CPU time)")
        if summary.get("prepared_vs_repeat"):
            lines.append(f"{'':<14}prepared first drag {summary['prepared_vs_repeat']:.2f}x the time of a repeat "
                         f"(after {summary['prepared']['prepare_s']:.1f} s of preparing while points are placed)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    """Entry point of ``dragedit bench speed``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except BenchUsageError as exc:
        print(f"dragedit bench speed: {exc}", file=sys.stderr)
        return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    import torch

    from ..engine import EditError, Engine, EngineSettings
    from ..engine.engine import default_cache_dir

    if args.repeat < 0 or args.pass_repeat < 0:
        raise BenchUsageError("--repeat and --pass-repeat must be 0 or more")
    if args.passes_only and not args.pass_repeat:
        raise BenchUsageError("--passes-only needs --pass-repeat 1 or more")
    if args.size is not None and (args.size < 8 or args.size % 8):
        raise BenchUsageError(f"--size {args.size} must be a multiple of 8 (e.g. 64 or 512)")
    if args.threads < 0:
        raise BenchUsageError("--threads must be 0 (torch's default) or more")
    if args.prepared and args.no_mask:
        raise BenchUsageError("--prepared needs the selection (a prepare cannot know the region around points not "
                              "placed yet): drop --no-mask")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        methods = [] if args.passes_only else select_methods(args.method)
        params = method_params(methods, args.param)
        models_dir = Path(args.models_dir) if args.models_dir else default_cache_dir().parent / "bench-models"
        source = resolve_model(args.model, models_dir)

        # One engine for the single-pass timing: it also warms the device up for every method alike.
        probe = Engine(EngineSettings(model=source, device=args.device, dtype=args.precision, vae=args.vae))
        model = probe.ensure_model()
        size = args.size or model.unet.config.sample_size * model.vae_scale_factor
        if size % model.size_multiple:
            raise BenchUsageError(f"--size {size} must be a multiple of {model.size_multiple} for this model")
        environment = {
            "model": args.model, "model_source": source, "device": str(model.device),
            "device_name": torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else platform.processor() or "CPU",
            "dtype": str(model.dtype).replace("torch.", ""), "precision": model.precision.name, "vae": args.vae,
            "size": size, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "load_average": round(os.getloadavg()[0], 2),
            "masked": not args.no_mask, "seed": args.seed,
        }
        report: dict[str, Any] = {"environment": environment, "passes": None, "methods": {}}
        if args.pass_repeat:
            report["passes"] = bench_passes(model, size, args.pass_repeat)
        model_device = model.device
        del model, probe
        release_device_memory()

        def settings_for(cache: str) -> EngineSettings:
            return EngineSettings(model=source, device=args.device, dtype=args.precision, vae=args.vae, cache_dir=cache,
                                  work_size=size)

        for method in methods:
            request = bench_request(size, method, params[method], args.seed, not args.no_mask)
            report["methods"][method] = bench_method(method, settings_for, request, args.repeat, model_device,
                                                     args.prepared)
            report["methods"][method]["params"] = params[method]
    except EditError as exc:
        print(f"dragedit bench speed: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""), file=sys.stderr)
        return EXIT_FAILED
    environment["load_average_end"] = round(os.getloadavg()[0], 2)
    print(format_report(report))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=1))
    return 0
