"""The ``dragedit`` command: serve, edit, status, keys, bench, demo.

Heavy modules (torch, diffusers, numpy, Pillow) are imported inside the commands that need
them, so ``dragedit --help`` and ``dragedit status`` start fast.
Exit status: 0 done, 1 the job or command failed, 2 bad usage, 3 no daemon answered.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import __version__

BENCHMARKS = ("speed", "quality", "load", "fuzz", "paste")
# engine.precision.PRECISION_MODES, written out so that --help does not import torch (a test keeps them equal)
PRECISION_MODES = ("auto", "authors", "bf16", "fp16", "fp32")
PRECISION_HELP = ("auto: bf16 (fp16 without bf16 support) on a GPU, fp32 on the CPU; authors: as the methods' "
                  "authors run on a GPU (fp16 weights, fp32 UNet under fp16 autocast for the drag, fp16 mixed-"
                  "precision RecLoRA); bf16 / fp16 / fp32: everything in that type. --dtype is the old name")
EXIT_FAILED, EXIT_USAGE, EXIT_NO_DAEMON = 1, 2, 3


class UsageError(Exception):
    """Bad input on the command line; the message says what to write instead."""


def default_endpoint() -> str:
    from dragedit_protocol import DEFAULT_ENDPOINT

    return os.environ.get("DRAGEDIT_ENDPOINT") or DEFAULT_ENDPOINT


# ---------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dragedit",
        description="Point-based drag editing with diffusion models, served to Krita and GIMP.",
        epilog="The user data folder is $DRAGEDIT_HOME, else $XDG_DATA_HOME/dragedit. "
               "$DRAGEDIT_ENDPOINT changes the default daemon address.")
    parser.add_argument("--version", action="version", version=f"dragedit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the daemon that the editors and the CLI talk to",
                                description="Run the DragEdit daemon (one per user) until Ctrl-C or SIGTERM.")
    serve.add_argument("--endpoint", default=None, help="address to listen on (default: tcp://127.0.0.1:48611); "
                       "only this user's clients get in (CurveZMQ keys in the data folder), and on an address "
                       "other machines can reach the clients authorised with 'dragedit keys'")
    _engine_options(serve)
    serve.add_argument("--devices", default=None, metavar="LIST",
                       help="one worker (with its own model copy and caches) per device, e.g. cuda:0,cuda:1 or "
                            "cpu,cpu; default: every visible GPU when --device is auto or cuda, else --device")
    serve.add_argument("--allow-model", action="append", default=[], metavar="MODEL",
                       help="a model jobs may ask for (hub id, folder or .safetensors file); repeatable")
    serve.add_argument("--models-dir", action="append", default=[], metavar="DIR",
                       help="jobs may ask for any model inside this folder; repeatable")
    serve.add_argument("--result-hours", type=float, default=24.0,
                       help="how long unfetched results are kept (default 24)")
    serve.add_argument("--max-queued-mb", type=int, default=1024,
                       help="image megabytes that may wait in the queue; more is refused with queue_full (default 1024)")
    serve.add_argument("-v", "--verbose", action="store_true", help="log debug messages")

    edit = commands.add_parser("edit", help="drag-edit an image file",
                               description="Drag-edit IMAGE and write the result to --out, through the running "
                                           "daemon or, with --local, in this process.")
    edit.add_argument("image", metavar="IMAGE", help="input image (PNG, JPEG, ...)")
    edit.add_argument("--points", action="append", required=True, metavar="X1,Y1:X2,Y2",
                      help="a handle -> target pair in image pixels; repeatable")
    edit.add_argument("--mask", help="8-bit mask image of the same size (white = may change; default: a box around "
                      "the points, grown by a quarter of the image's short side or the longest drag)")
    edit.add_argument("--method", required=True, help="drag method, e.g. dragdiffusion (see: dragedit status)")
    edit.add_argument("--param", action="append", default=[], metavar="K=V", help="method parameter; repeatable")
    edit.add_argument("--seed", type=int, help="random seed")
    edit.add_argument("--prompt", default="", help="optional text describing the image")
    edit.add_argument("--out", required=True, help="output PNG")
    edit.add_argument("--local", action="store_true", help="run the engine in this process instead of the daemon")
    edit.add_argument("--endpoint", default=None, help="daemon address")
    _engine_options(edit, model_help="model for this edit (default: the daemon's)")
    _key_options(edit)

    prepare = commands.add_parser(
        "prepare", help="get an image ready for dragging (RecLoRA, inversion) before choosing the points",
        description="Ask the running daemon to make IMAGE's RecLoRA and inversion now, so that a later "
                    "'dragedit edit' (or a plug-in's drag) of the same image, mask and settings starts at once.")
    prepare.add_argument("image", metavar="IMAGE", help="input image (PNG, JPEG, ...)")
    prepare.add_argument("--mask", help="the mask the edit will use (white = may change; default: the whole image; "
                         "an edit without --mask edits a box around its points, so give the edit this mask too)")
    prepare.add_argument("--method", default=None, help="the method the edit will use (default: every method)")
    prepare.add_argument("--param", action="append", default=[], metavar="K=V",
                         help="a parameter the edit will set (with --method); repeatable")
    prepare.add_argument("--prompt", default="", help="the prompt the edit will use")
    prepare.add_argument("--model", default=None, help="the model the edit will use (default: the daemon's)")
    prepare.add_argument("--vae", default=None, help="the VAE the edit will use (default: the model's)")
    prepare.add_argument("--wait", action="store_true", help="show progress and return when it is ready")
    prepare.add_argument("--endpoint", default=None, help="daemon address")
    _key_options(prepare)

    status = commands.add_parser("status", help="show the daemon, device, model, queue and caches")
    status.add_argument("--endpoint", default=None, help="daemon address")
    status.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    status.add_argument("--json", action="store_true", help="print the raw status as JSON")
    _key_options(status)

    keys = commands.add_parser("keys", help="CurveZMQ keys for serving other machines",
                               description="Manage the daemon's CurveZMQ server key and its authorised clients.")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    server = key_commands.add_parser("server", help="create (once) and print the server public key")
    server.add_argument("--force", action="store_true", help="replace the key pair (every client must be updated)")
    new_client = key_commands.add_parser("new-client", help="create and authorise a key pair for a client machine")
    new_client.add_argument("name", help="a name for the client (letters, digits, '.', '_', '-')")
    new_client.add_argument("--out", help="also write the pair to this file, for dragedit --client-key-file")
    authorize = key_commands.add_parser("authorize", help="authorise a client's existing public key")
    authorize.add_argument("name")
    authorize.add_argument("public_key", metavar="PUBLIC_KEY", help="40-character z85 public key")
    revoke = key_commands.add_parser("revoke", help="remove an authorised client")
    revoke.add_argument("name")
    key_commands.add_parser("list", help="list the authorised clients")

    bench = commands.add_parser("bench", help="benchmarks: " + ", ".join(BENCHMARKS),
                                description="Run a benchmark; 'dragedit bench NAME --help' shows its options.")
    bench.add_argument("name", choices=BENCHMARKS, metavar="NAME", help=", ".join(BENCHMARKS))
    bench.add_argument("args", nargs=argparse.REMAINDER, help="options of the benchmark")

    demo = commands.add_parser("demo", help="the toy demo ('dragedit demo --help' for its options)",
                               add_help=False)
    demo.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _engine_options(parser: argparse.ArgumentParser, model_help: str | None = None) -> None:
    parser.add_argument("--model", default=None,
                        help=model_help or "hub id, diffusers folder or .safetensors checkpoint (default: SD 1.5)")
    parser.add_argument("--model-config", default=None, metavar="FOLDER_OR_ID",
                        help="for a single .safetensors checkpoint: a diffusers SD-1.5 folder (or hub id) giving its "
                             "architecture and tokenizer (default: SD-1.5's configs from the hub)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (engine in this process)")
    parser.add_argument("--precision", "--dtype", dest="precision", default="auto", choices=PRECISION_MODES,
                        help=PRECISION_HELP)
    parser.add_argument("--vae", default=None, metavar="VAE",
                        help="a VAE instead of the model's own: hub id (e.g. stabilityai/sd-vae-ft-mse, GoodDrag's), "
                             "diffusers folder or .safetensors file")
    parser.add_argument("--work-size", type=int, default=None,
                        help="short side of the working region (multiple of 8; default: the model's native size, "
                             "512 for SD-1.5, 128 for the toy model)")


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server-key", help="the daemon's CurveZMQ public key, for a daemon on another machine")
    parser.add_argument("--client-key-file", help="this client's key pair file (from: dragedit keys new-client --out)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # bench and demo pass their options through untouched (argparse would take e.g. --help itself)
    if argv[:1] == ["demo"]:
        return run_module("dragedit.toy.demo", argv[1:], "the demo")
    if argv[:1] == ["bench"] and len(argv) > 1 and argv[1] in BENCHMARKS:
        return run_module(f"dragedit.bench.{argv[1]}", argv[2:], f"the '{argv[1]}' benchmark")
    args = build_parser().parse_args(argv)
    handler = {"serve": cmd_serve, "edit": cmd_edit, "prepare": cmd_prepare, "status": cmd_status,
               "keys": cmd_keys}[args.command]
    try:
        return handler(args)
    except UsageError as exc:
        print(f"dragedit {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


# ---------------------------------------------------------------------------- serve


def engine_settings(args: argparse.Namespace, cache_dir: Path | None = None):
    from .engine.api import DEFAULT_MODEL, EngineSettings

    if args.work_size is not None and (args.work_size < 64 or args.work_size % 8):
        raise UsageError(f"--work-size {args.work_size} must be a multiple of 8 of at least 64")
    return EngineSettings(model=args.model or DEFAULT_MODEL, model_config=args.model_config,
                          device=args.device, dtype=args.precision, vae=args.vae, work_size=args.work_size,
                          cache_dir=str(cache_dir) if cache_dir else None)


def create_engine(settings):
    """The real engine (imports torch and diffusers)."""
    from .engine import Engine

    return Engine(settings)


def cmd_serve(args: argparse.Namespace) -> int:
    from .config import Paths
    from .daemon import Daemon, DaemonError, DaemonOptions
    from .daemon.logs import quiet_progress_bars, setup_logging
    from .daemon.security import EndpointError, check_endpoint

    if args.max_queued_mb < 1:
        raise UsageError(f"--max-queued-mb {args.max_queued_mb} must be at least 1")
    try:
        endpoint = check_endpoint(args.endpoint or default_endpoint())
    except EndpointError as exc:
        raise UsageError(str(exc))
    devices = serve_devices(args.devices, args.device)
    paths = Paths.default().make()
    quiet_progress_bars()
    options = DaemonOptions(
        endpoint=endpoint, settings=engine_settings(args, paths.cache), paths=paths, devices=devices,
        allow_models=tuple(args.allow_model), model_folders=tuple(args.models_dir),
        result_ttl_s=args.result_hours * 3600, max_queued_bytes=args.max_queued_mb * 2**20)
    daemon = Daemon(options, create_engine)
    try:
        daemon.check()
        setup_logging(paths.log_file, args.verbose)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: daemon.stop())
        daemon.serve_forever()
    except DaemonError as exc:
        print(f"dragedit serve: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not daemon.finished_cleanly:  # a job stuck inside the engine must not keep the process alive
        logging.shutdown()
        os._exit(0)
    return 0


def serve_devices(devices: str | None, device: str) -> tuple[str, ...]:
    """The workers' devices: --devices as given, else every visible GPU when --device allows a GPU and
    there are several, else () (one worker on --device)."""
    if devices is not None:
        names = tuple(name.strip() for name in devices.split(","))
        for name in names:
            if name != "cpu" and not re.fullmatch(r"cuda(:\d+)?", name):
                raise UsageError(f"--devices: '{name}' is not cpu, cuda or cuda:N (write e.g. cuda:0,cuda:1)")
        return names
    if device not in ("auto", "cuda"):
        return ()
    import torch

    count = torch.cuda.device_count()
    return tuple(f"cuda:{index}" for index in range(count)) if count > 1 else ()


# ---------------------------------------------------------------------------- edit


def parse_points(values: list[str]) -> list[tuple[float, float, float, float]]:
    """'X1,Y1:X2,Y2' strings -> (handle_x, handle_y, target_x, target_y)."""
    points = []
    for text in values:
        try:
            handle, target = text.split(":")
            hx, hy = (float(v) for v in handle.split(","))
            tx, ty = (float(v) for v in target.split(","))
        except ValueError:
            raise UsageError(f"--points {text!r} is not X1,Y1:X2,Y2 (handle then target, in pixels), e.g. 10,20:30,20")
        points.append((hx, hy, tx, ty))
    return points


def parse_params(values: list[str]) -> dict[str, Any]:
    """'k=v' strings -> {k: bool | int | float | str}."""
    params: dict[str, Any] = {}
    for text in values:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {text!r} is not NAME=VALUE, e.g. --param drag_steps=40")
        params[key] = parse_value(raw)
    return params


def parse_value(raw: str) -> bool | int | float | str:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def read_image_and_mask(args: argparse.Namespace):
    """The RGBA image of args.image and the L mask of args.mask (None without one), of equal sizes."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(args.image) as img:
            rgba = img.convert("RGBA")
        mask = None
        if args.mask:
            with Image.open(args.mask) as img:
                mask = img.convert("L")
    except (OSError, UnidentifiedImageError) as exc:
        raise UsageError(f"cannot read the image: {exc}")
    if mask is not None and mask.size != rgba.size:
        raise UsageError(f"the mask is {mask.size[0]}x{mask.size[1]} but the image is {rgba.size[0]}x{rgba.size[1]}")
    return rgba, mask


def validated(message: dict[str, Any]) -> dict[str, Any]:
    """A client message as the daemon will read it; a problem is a UsageError with its hint."""
    from dragedit_protocol import messages

    try:
        return messages.validate_client({**message, "v": messages.PROTOCOL_VERSION})
    except messages.ProtocolError as err:
        raise UsageError(f"{err.message}{'; ' + err.hint if err.hint else ''}")


def load_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """Read the image and mask and build a validated submit message."""
    from dragedit_protocol import messages

    rgba, mask = read_image_and_mask(args)
    points = parse_points(args.points)
    mask_data = mask.tobytes() if mask is not None else default_mask(points, rgba.width, rgba.height)
    return validated(messages.submit("cli", args.method, rgba.tobytes(), rgba.width, rgba.height, points, mask_data,
                                     parse_params(args.param), args.model, args.seed, args.prompt, vae=args.vae))


def default_mask(points: list[tuple[float, float, float, float]], width: int, height: int) -> bytes:
    """Without --mask: the default editable region around the points, the one the plug-ins send."""
    from dragedit_protocol.regions import box_mask, region_box_around_points

    try:
        box = region_box_around_points(points, width, height)
    except ValueError as exc:
        raise UsageError(str(exc))
    print(f"no --mask: editing the box x {box[0]}..{box[2] - 1}, y {box[1]}..{box[3] - 1} around the points",
          file=sys.stderr)
    return box_mask(box, width, height)


def cmd_edit(args: argparse.Namespace) -> int:
    submit = load_inputs(args)
    if not args.out.lower().endswith(".png"):
        raise UsageError(f"--out {args.out} must be a .png file (the result has an alpha channel)")
    outcome = edit_local(args, submit) if args.local else edit_remote(args, submit)
    if outcome is None or outcome["type"] != "result":
        return outcome_code(outcome)
    save_result(outcome, args.out)
    print(f"wrote {args.out} ({outcome['image']['width']}x{outcome['image']['height']}, seed {outcome['seed']})",
          file=sys.stderr)
    print(format_timings(outcome["timings"], outcome.get("cache_hits", {})), file=sys.stderr)
    return 0


def format_timings(timings: dict[str, float], cache_hits: dict[str, bool]) -> str:
    """Each phase's seconds, and which came from a cache: 'load 0.0 s, lora 0.0 s (cached), ...'."""
    return "phases: " + ", ".join(f"{phase} {seconds:.1f} s{' (cached)' if cache_hits.get(phase) else ''}"
                                  for phase, seconds in timings.items())


def cmd_prepare(args: argparse.Namespace) -> int:
    from dragedit_protocol import messages

    if args.param and not args.method:
        raise UsageError("--param needs --method (without one, every method is prepared with its defaults)")
    rgba, mask = read_image_and_mask(args)
    message = validated(messages.prepare("cli", rgba.tobytes(), rgba.width, rgba.height,
                                         mask.tobytes() if mask is not None else None, args.method,
                                         parse_params(args.param), args.model, args.prompt, args.vae))
    client = make_client(args, timeout_s=10.0)
    try:
        prepare_id = client.prepare(message["image"]["data"], rgba.width, rgba.height,
                                    message["mask"]["data"] if message["mask"] else None, args.method,
                                    message["params"], args.model, args.prompt, args.vae)
        printer = ProgressPrinter()
        while client.state not in ("unreachable", "incompatible"):
            for update in client.poll(100):
                if update["type"] != "prepared" or update["prepare_id"] != prepare_id:
                    continue
                if update["state"] in ("failed", "ready"):
                    printer.done()
                if update["state"] == "failed":
                    error = update["error"]
                    print(f"dragedit prepare: {error['message']} [{error['code']}]"
                          + (f"\n  hint: {error['hint']}" if error.get("hint") else ""), file=sys.stderr)
                    return EXIT_FAILED
                if update["state"] == "ready":
                    cached = [phase for phase, hit in update["cached"].items() if hit]
                    print(f"ready{' (already cached: ' + ', '.join(cached) + ')' if cached else ''}", file=sys.stderr)
                    return 0
                if not args.wait:
                    print(f"{update['state']}: the daemon goes on preparing in the background", file=sys.stderr)
                    return 0
                if update["state"] == "running":
                    printer.show({**update, "type": "progress", "phase": "preparing"})
        print(f"dragedit prepare: {client.error_text}", file=sys.stderr)
        return EXIT_NO_DAEMON
    finally:
        client.close()


def outcome_code(outcome: dict[str, Any] | None) -> int:
    if outcome is None:
        return EXIT_NO_DAEMON
    if outcome["type"] == "cancelled":
        print("dragedit edit: cancelled", file=sys.stderr)
        return 130
    hint = f"\n  hint: {outcome['hint']}" if outcome.get("hint") else ""
    print(f"dragedit edit: {outcome['message']} [{outcome['code']}]{hint}", file=sys.stderr)
    return EXIT_FAILED


def save_result(outcome: dict[str, Any], path: str) -> None:
    from PIL import Image

    image = outcome["image"]
    Image.frombytes("RGBA", (image["width"], image["height"]), image["data"]).save(path)


class ProgressPrinter:
    """Progress on stderr: one updating line on a terminal, a line per phase otherwise."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._phase = None

    def show(self, message: dict[str, Any]) -> None:
        if message["type"] == "queued":
            text = "running" if message["position"] == 0 else f"queued, position {message['position']}"
            self._line(text, new=True)
            return
        eta = f", about {message['eta_s']:.0f}s left" if message.get("eta_s") is not None else ""
        cached = " (cached)" if message.get("cached") else ""
        text = f"{message['phase']} {message['step']}/{message['total']}{cached}{eta}"
        new = message["phase"] != self._phase
        self._phase = message["phase"]
        if self._tty or new:
            self._line(text, new)

    def _line(self, text: str, new: bool) -> None:
        if self._tty:
            sys.stderr.write(("\n" if new and self._phase else "\r") + text.ljust(60))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self._tty:
            sys.stderr.write("\n")


def edit_remote(args: argparse.Namespace, submit: dict[str, Any]) -> dict[str, Any] | None:
    """Run the job on the daemon; returns its final message, or None when no daemon answers."""
    client = make_client(args, timeout_s=10.0)
    printer = ProgressPrinter()
    interrupts: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda *_: interrupts.append(1))
    cancel_sent = False
    try:
        job_id = client.submit(submit["method"], submit["image"]["data"], submit["image"]["width"],
                               submit["image"]["height"], [(*h, *t) for h, t in submit["points"]],
                               submit["mask"]["data"] if submit["mask"] else None, submit["params"], submit["model"],
                               submit["seed"], submit["prompt"], vae=submit["vae"])
        while True:
            for message in client.poll(100):
                if message.get("job_id") != job_id:
                    continue
                if message["type"] in ("queued", "progress"):
                    printer.show(message)
                else:
                    printer.done()
                    return message
            if interrupts and not cancel_sent:  # Ctrl-C: cancel the job and wait for the daemon's answer
                client.cancel(job_id)
                cancel_sent = True
            if client.state in ("unreachable", "incompatible"):
                printer.done()
                print(f"dragedit edit: {client.error_text}", file=sys.stderr)
                return None
    finally:
        signal.signal(signal.SIGINT, previous)
        client.close()


def edit_local(args: argparse.Namespace, submit: dict[str, Any]) -> dict[str, Any]:
    """Run the job in this process; returns a result or error message like the daemon's."""
    from dragedit_protocol import messages

    from .config import Paths
    from .daemon.convert import progress_message, result_message, to_request
    from .engine.api import EditError, JobCancelled

    printer = ProgressPrinter()
    settings = engine_settings(args, Paths.default().cache)
    try:
        engine = create_engine(settings)
        result = engine.run(to_request(submit), lambda p: printer.show(progress_message("local", p)))
        return result_message("local", result)
    except EditError as exc:
        return messages.error(exc.code, exc.message, exc.hint)
    except (JobCancelled, KeyboardInterrupt):
        return messages.cancelled("local")
    finally:
        printer.done()


def make_client(args: argparse.Namespace, timeout_s: float):
    from dragedit_protocol.client import DaemonClient

    from dragedit_protocol.keys import KeysError, load_client_keys

    try:
        keys = load_client_keys(args.server_key or os.environ.get("DRAGEDIT_SERVER_KEY"),
                                args.client_key_file or os.environ.get("DRAGEDIT_CLIENT_KEY_FILE"))
    except KeysError as exc:
        raise UsageError(str(exc))
    server_key, client_public, client_secret = keys.server_public_key, keys.client_public_key, keys.client_secret_key
    return DaemonClient(args.endpoint or default_endpoint(), client="dragedit-cli", client_version=__version__,
                        server_public_key=server_key, client_public_key=client_public, client_secret_key=client_secret,
                        heartbeat_interval_s=1.0, timeout_s=timeout_s)


# ---------------------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace) -> int:
    client = make_client(args, timeout_s=args.timeout)
    client.request_status()
    deadline = time.monotonic() + args.timeout
    status = None
    try:
        while status is None and time.monotonic() < deadline and client.state != "incompatible":
            status = next((m for m in client.poll(100) if m["type"] == "status"), None)
    finally:
        client.close()
    if status is None:
        reason = client.error_text if client.state == "incompatible" else (
            f"No DragEdit daemon answers at {client.endpoint}. Start one with: dragedit serve")
        print(reason, file=sys.stderr)
        return EXIT_NO_DAEMON
    if args.json:
        print(json.dumps({k: v for k, v in status.items() if k != "v"}, indent=2, default=str))
    else:
        print(format_status(status))
    return 0


def format_status(status: dict[str, Any]) -> str:
    from dragedit_protocol.messages import download_words

    running, download = status.get("running"), status.get("loading")
    engine = status["state"] + (f": {status['error']['message']}" if status.get("error") else "")
    if download:  # the daemon's hub model is still downloading
        engine += f": downloading, {download_words(download)}" + (f" ({download['file']})" if download.get("file") else "")
    lines = [
        f"daemon   {status['daemon_version']} (pid {status['pid']}) at {status['endpoint']}, up {status['uptime_s']:.0f}s"
        f"{', CurveZMQ' if status.get('secure') else ''}",
        f"engine   {engine}",
        f"device   {status.get('device') or 'not known yet'}",
        f"model    {status.get('model')}",
        f"queue    {'running ' + (running['job_id'] or 'a job of another client') + ' (' + running['method'] + ')' if running else 'idle'}, "
        f"{status['queued']} waiting, {status['clients']} client(s)",
        f"results  {status['results_stored']} kept in {status['data_folder']}",
    ]
    prepare = status.get("prepare")
    if prepare:
        lines.insert(5, f"prepare  {'one running, ' if prepare['running'] else ''}{prepare['waiting']} waiting, "
                        f"{prepare['done']} image(s) ready")
    workers = status.get("workers") or []
    if len(workers) > 1:
        lines.insert(3, "workers  " + ", ".join(f"{w['device']} {_worker_activity(w)}" for w in workers))
    caches = (status.get("engine") or {}).get("caches")
    if caches:
        lines.append("caches   " + ", ".join(f"{k} {v}" for k, v in caches.items()))
    return "\n".join(lines)


def _worker_activity(worker: dict[str, Any]) -> str:
    running = worker.get("running")
    if worker.get("state") != "ready" and not running:
        return worker.get("state") or "starting"
    if not running:
        return "idle"
    return f"preparing ({running.get('method') or 'every method'})" if running.get("prepare") else \
        f"running {running.get('method')}"


# ---------------------------------------------------------------------------- keys


def cmd_keys(args: argparse.Namespace) -> int:
    from .config import Paths
    from .daemon import security

    paths = Paths.default().make()
    try:
        if args.keys_command == "server":
            public = security.create_server_keys(paths, force=args.force)
            print(f"server public key: {public.decode()}")
            print(f"(secret key in {security.server_key_files(paths)[1]}; give only the public key to clients)")
        elif args.keys_command == "new-client":
            server = security.create_server_keys(paths)
            public, secret = security.new_client(paths, args.name)
            if args.out:
                try:
                    security.write_key_pair(Path(args.out), public, secret, f"DragEdit client '{args.name}' key pair")
                except OSError as exc:
                    raise UsageError(f"cannot write {args.out}: {exc}")
            print(f"client '{args.name}' is authorised. Enter these in the plug-in's settings on that machine:")
            print(f"  server public key: {server.decode()}")
            print(f"  client public key: {public.decode()}")
            print(f"  client secret key: {secret.decode()}   (keep it secret; it is not stored here)")
        elif args.keys_command == "authorize":
            print(f"authorised '{args.name}': {security.authorize(paths, args.name, args.public_key)}")
        elif args.keys_command == "revoke":
            security.revoke(paths, args.name)
            print(f"revoked '{args.name}'")
        else:
            clients = security.authorized(paths)
            for name, key in clients.items():
                print(f"{name}  {key.decode()}")
            if not clients:
                print("no authorised clients (add one with: dragedit keys new-client NAME)")
    except security.KeySetupError as exc:
        raise UsageError(str(exc))
    return 0


# ---------------------------------------------------------------------------- bench, demo


def run_module(name: str, argv: list[str], what: str) -> int:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            print(f"dragedit: {what} is not part of this installation ({name} is missing)", file=sys.stderr)
            return EXIT_FAILED
        raise
    return int(module.main(list(argv)) or 0)
