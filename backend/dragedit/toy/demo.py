"""`dragedit demo`: see DragEdit work with no GPU, no download and no editor.

Starts the daemon in this process on the shipped toy model, sends it a drag of a toy scene with each
method through the same client the plug-ins use, and writes before/after PNGs and an animated GIF of
the drag (the live previews with the handle trajectory) for every method.
"""
from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .cases import CASE_SIZE, DragCase, all_cases
from .params import toy_params
from .pictures import draw_arrows, draw_trajectory, enlarge

DEMO_CASE = "move-long-1-mask"  # a box dragged 36 px to the left inside a selection
JOB_TIMEOUT_S = 1800.0
READY_TIMEOUT_S = 300.0


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

    def take(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "progress":
            self.phase = message["phase"]
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


def run_demo(out: Path, methods: list[str] | None, device: str) -> int:
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
            written = [out / "before.png"]
            for method in chosen:
                print(f"{method}: dragging ...", flush=True)
                recording = _run_job(client, case, method, toy_params(specs[method]))
                if recording.error:
                    print(f"error: {method} failed: {recording.error}", file=sys.stderr)
                    return 1
                enlarge(recording.result).save(out / f"after-{method}.png")
                write_gif(out / f"drag-{method}.gif", case, recording)
                written += [out / f"after-{method}.png", out / f"drag-{method}.gif"]
        finally:
            client.close()
            daemon.stop()
            thread.join(timeout=30)
    print("\nwritten:")
    for path in written:
        print(f"  {path.resolve()}")
    return 0


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


def _run_job(client, case: DragCase, method: str, params: dict[str, Any]) -> DragRecording:
    image = case.image()
    mask = case.mask()
    job = client.submit(method, image.tobytes(), CASE_SIZE, CASE_SIZE,
                        [(h[0], h[1], t[0], t[1]) for h, t in case.points],
                        mask=None if mask is None else mask.tobytes(), params=params, seed=0, preview_every=2)
    recording = DragRecording()
    deadline = time.monotonic() + JOB_TIMEOUT_S
    last_phase = ""
    while not recording.finished:
        for message in client.poll(200):
            if message.get("job_id") in (job, None):
                recording.take(message)
        if recording.phase != last_phase:
            print(f"  {recording.phase}", flush=True)
            last_phase = recording.phase
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
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return run_demo(args.out, args.method, args.device)


if __name__ == "__main__":
    raise SystemExit(main())
