"""`dragedit demo`: see DragEdit work with no GPU, no download and no editor.

Starts the daemon in this process on the shipped toy model, sends it a drag of a toy scene with each
method through the same client the plug-ins use, shows one progress line per method (its steps over
all phases and the time left), and writes before/after PNGs, an animated GIF of the drag (the live
previews with the handle trajectory) for every method and one HTML page with all of them and how far
each method moved the object (measured on the ground truth, as `dragedit bench quality` does).
"""
from __future__ import annotations

import argparse
import html
import logging
import os
import socket
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..engine.ddim import NUM_INFERENCE_STEPS
from .cases import CASE_SIZE, DragCase, all_cases
from .measure import score_case
from .params import toy_params
from .pictures import draw_arrows, draw_trajectory, enlarge

# The left side of a box pulled 16 px outwards inside a selection: of the cases measured with every
# method on the shipped model, the one each moves at least half way (docs/quality.md, "The demo").
DEMO_CASE = "stretch-1-mask"
JOB_TIMEOUT_S = 1800.0
READY_TIMEOUT_S = 300.0
PHASES = ("lora", "inversion", "drag", "denoise")  # the phases a job reports steps of, in order

# Library messages a demo user can do nothing about (the toy model is loaded in float32 on purpose,
# and the engine swaps LoRA adapters in and out of one UNet by design).
QUIET_WARNINGS = ("Already found a `?peft_config", ".*should be kept in float32.*",
                  "Adapter .* was active which is now deleted")


def quiet_libraries() -> None:
    """Silence the warnings and progress bars of diffusers, transformers, peft and the hub."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in ("diffusers", "transformers", "peft", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def expected_steps(spec: dict[str, Any]) -> dict[str, int]:
    """Steps per phase a method's defaults make, before the job reports the real numbers."""
    defaults = {p["name"]: p["default"] for p in spec["params"]}
    denoise = round(defaults.get("inversion_strength", 0.7) * NUM_INFERENCE_STEPS)
    drag = defaults.get("drag_steps") or defaults.get("operations") or 1
    return {"lora": defaults.get("lora_steps", 0), "inversion": denoise, "drag": drag, "denoise": denoise}


class MethodProgress:
    """One progress line for one method's job: the steps of every phase on one bar, with the time
    left. Phases that have not started count with their expected steps; a reported phase with its
    own (a drag that stops early ends its part of the bar)."""

    def __init__(self, method: str, expected: dict[str, int], enabled: bool = True):
        from tqdm import tqdm

        self.totals = dict(expected)
        self.done = {phase: 0 for phase in PHASES}
        self.bar = tqdm(total=sum(self.totals.values()), desc=f"{method:<14}", unit="step", file=sys.stdout,
                        dynamic_ncols=True, disable=not enabled,
                        bar_format="{desc} {bar} {n_fmt}/{total_fmt} steps, {elapsed} spent, {remaining} left{postfix}")

    def update(self, phase: str, step: int, total: int, cached: bool = False) -> None:
        if phase not in self.done:
            return
        position = PHASES.index(phase)
        for earlier in PHASES[:position]:  # a phase that started means the ones before it ended
            self.done[earlier] = self.totals[earlier]
        self.totals[phase] = max(total, 1)
        self.done[phase] = self.totals[phase] if cached else min(step, self.totals[phase])
        self.bar.total = sum(self.totals.values())
        self.bar.n = sum(self.done.values())
        self.bar.set_postfix_str(phase + (" (cached)" if cached else ""), refresh=False)
        self.bar.refresh()

    def finish(self, note: str, completed: bool = True) -> None:
        """End the line with `note`; a completed job fills the bar."""
        if completed:
            self.bar.n = self.bar.total
        self.bar.set_postfix_str(note, refresh=False)
        self.bar.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demo_case() -> DragCase:
    return next(case for case in all_cases() if case.name == DEMO_CASE)


class DragRecording:
    """What the daemon sent about one job: previews with handles, then the result or an error."""

    def __init__(self) -> None:
        self.frames: list[tuple[np.ndarray | None, list[tuple[float, float]]]] = []
        self.trajectory: list[list[tuple[float, float]]] = []
        self.result: np.ndarray | None = None
        self.error = ""
        self.phase = ""
        self.step = 0
        self.total = 0
        self.cached = False

    def take(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "progress":
            self.phase = message["phase"]
            self.step, self.total = int(message.get("step", 0)), int(message.get("total", 0))
            self.cached = bool(message.get("cached"))
            if message.get("handles") and message["phase"] == "drag":
                handles = [tuple(h) for h in message["handles"]]
                self.trajectory.append(handles)
                preview = message.get("preview")
                self.frames.append((_preview_array(preview) if preview else None, handles))
        elif kind == "result":
            img = message["image"]
            self.result = np.frombuffer(img["data"], np.uint8).reshape(img["height"], img["width"], 4)
        elif kind in ("error", "cancelled"):
            self.error = f"{message.get('message', 'cancelled')} {message.get('hint', '')}".strip()

    @property
    def finished(self) -> bool:
        return self.result is not None or bool(self.error)


def _preview_array(preview: dict[str, Any]) -> np.ndarray:
    rgb = np.frombuffer(preview["data"], np.uint8).reshape(preview["height"], preview["width"], 3)
    if rgb.shape[:2] != (CASE_SIZE, CASE_SIZE):  # previews are small: bring them to the image size
        rgb = np.asarray(Image.fromarray(rgb).resize((CASE_SIZE, CASE_SIZE), Image.BILINEAR))
    return rgb


def write_gif(path: Path, case: DragCase, recording: DragRecording) -> None:
    """An animated GIF: the input with arrows, the drag (previews and the growing trajectory), the result."""
    source = case.image()
    frames = [draw_arrows(source, case.points)]
    trajectory: list[list[tuple[float, float]]] = []
    step = max(1, len(recording.frames) // 40)
    last = source
    for i, (preview, handles) in enumerate(recording.frames):
        trajectory.append(handles)
        last = preview if preview is not None else last
        if i % step == 0:
            frames.append(draw_trajectory(last, case.points, trajectory))
    final = draw_trajectory(recording.result, case.points, trajectory)
    frames.extend([final] * 3)
    durations = [800] + [80] * (len(frames) - 4) + [700] * 3
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)


def run_demo(out: Path, methods: list[str] | None, device: str, show_progress: bool = True) -> int:
    quiet_libraries()
    from dragedit_protocol.client import DaemonClient

    from .. import __version__
    from ..config import Paths
    from ..daemon import Daemon, DaemonOptions
    from ..engine import Engine, EngineSettings

    case = _demo_case()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dragedit-demo-") as home:
        endpoint = f"tcp://127.0.0.1:{_free_port()}"
        settings = EngineSettings(model="toy", device=device, work_size=CASE_SIZE, cache_dir=str(Path(home) / "cache"))
        daemon = Daemon(DaemonOptions(endpoint=endpoint, settings=settings, paths=Paths(Path(home))), Engine)
        thread = daemon.start_in_thread()
        print(f"daemon started in this process on {endpoint} with the toy model", flush=True)
        client = DaemonClient(endpoint, client="dragedit-demo", client_version=__version__, data_folder=Path(home))
        try:
            welcome = _wait_until_ready(client)
            if welcome is None:
                return 1
            specs = {spec["name"]: spec for spec in welcome["methods"]}
            chosen = methods or list(specs)
            unknown = [m for m in chosen if m not in specs]
            if unknown:
                print(f"error: unknown method '{unknown[0]}'. Known methods: {', '.join(specs)}.", file=sys.stderr)
                return 2
            draw_arrows(case.image(), case.points).save(out / "before.png")
            draw_arrows(case.expected_image(), []).save(out / "expected.png")
            written = [out / "before.png"]
            moved: dict[str, float] = {}
            print(f"dragging {case.name} ({_describe(case)}) with {len(chosen)} method(s):", flush=True)
            for method in chosen:
                progress = MethodProgress(method, expected_steps(specs[method]), show_progress)
                recording = _run_job(client, case, method, toy_params(specs[method]), progress)
                if recording.error:
                    progress.finish("failed", completed=False)
                    print(f"error: {method} failed: {recording.error}", file=sys.stderr)
                    return 1
                moved[method] = score_case(case, recording.result).moved_fraction
                progress.finish(f"moved {moved[method]:.0%} of the way")
                enlarge(recording.result).save(out / f"after-{method}.png")
                write_gif(out / f"drag-{method}.gif", case, recording)
                written += [out / f"after-{method}.png", out / f"drag-{method}.gif"]
        finally:
            client.close()
            daemon.stop()
            thread.join(timeout=30)
    page = write_page(out, case, moved)
    print("\nwritten:")
    for path in written:
        print(f"  {path.resolve()}")
    print(f"\nsee the results: {page.resolve()}")
    return 0


def _describe(case: DragCase) -> str:
    (hx, hy), (tx, ty) = case.points[0]
    what = "a side of an object pulled" if case.kind == "stretch" else "an object dragged"
    selection = " inside a selection" if case.masked else ""
    return f"{what} {np.hypot(tx - hx, ty - hy):.0f} px{selection}"


def write_page(out: Path, case: DragCase, moved: dict[str, float]) -> Path:
    """index.html in `out`: the input, each method's drag (GIF) and result, the ground truth."""
    def figure(src: str, caption: str) -> str:
        return (f'<figure><img src="{src}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}'
                f'</figcaption></figure>')

    rows = [figure("before.png", "input: drag red to blue") + figure("expected.png", "where the object should end")]
    for method, fraction in moved.items():
        rows.append(figure(f"drag-{method}.gif", f"{method}: the drag") +
                    figure(f"after-{method}.png", f"{method}: result, moved {fraction:.0%} of the way"))
    body = "".join(f"<div>{row}</div>" for row in rows)
    page = out / "index.html"
    page.write_text(f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>DragEdit demo</title>
<style>body {{ font-family: sans-serif; margin: 1.5em; }} figure {{ display: inline-block; margin: 0 8px 8px 0;
text-align: center; }} img {{ width: 320px; image-rendering: pixelated; }}</style></head><body>
<h1>DragEdit demo: {html.escape(case.name)}</h1>
<p>{html.escape(_describe(case))}, with each method on the toy model shipped with DragEdit. "Moved" is
how far the object's content got towards the target, measured on the output (1 = all the way).</p>
{body}
</body></html>
""", encoding="utf-8")
    return page


def _wait_until_ready(client) -> dict[str, Any] | None:
    """The daemon's welcome once its engine has loaded the model; None (and a message) if it cannot."""
    from dragedit_protocol.client import READY

    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        client.poll(100)
        welcome = client.welcome or {}
        if client.state == READY and welcome.get("state") == "ready":
            return welcome
        if welcome.get("error") or client.state not in ("connecting", READY):
            error = welcome.get("error") or {}
            print(f"error: the in-process daemon cannot run the demo: {error.get('message') or client.error_text or client.state}"
                  f" {error.get('hint', '')}".rstrip(), file=sys.stderr)
            return None
    print(f"error: the daemon's engine was not ready after {READY_TIMEOUT_S:.0f} s", file=sys.stderr)
    return None


def _run_job(client, case: DragCase, method: str, params: dict[str, Any], progress: MethodProgress) -> DragRecording:
    image = case.image()
    mask = case.mask()
    job = client.submit(method, image.tobytes(), CASE_SIZE, CASE_SIZE,
                        [(h[0], h[1], t[0], t[1]) for h, t in case.points],
                        mask=None if mask is None else mask.tobytes(), params=params, seed=0, preview_every=2)
    recording = DragRecording()
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not recording.finished:
        for message in client.poll(200):
            if message.get("job_id") in (job, None):
                recording.take(message)
        if recording.phase:
            progress.update(recording.phase, recording.step, recording.total, recording.cached)
        if time.monotonic() > deadline:
            client.cancel(job)
            recording.error = f"no result after {JOB_TIMEOUT_S:.0f} s"
    return recording


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns a process exit code."""
    parser = argparse.ArgumentParser(prog="dragedit demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("dragedit-demo"), help="where to write the pictures")
    parser.add_argument("--method", action="append", default=None,
                        help="run only this method (repeatable; default: every method)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (1 is fastest for the toy model on a busy machine)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return run_demo(args.out, args.method, args.device, not args.no_progress)


if __name__ == "__main__":
    raise SystemExit(main())
