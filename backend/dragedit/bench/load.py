"""``dragedit bench load``: many clients flood one daemon; count what comes back.

Starts a daemon with a tiny random model on loopback (or uses --endpoint), warms it up with
one job per client, then every client submits all its jobs at once. Prints jobs submitted,
completed, failed, lost (no final message), duplicated (more than one), the latency
percentiles, how long each client waited for its first result (fairness), and the daemon's
memory when idle after the warm-up and after the load. Exit status 0 when every job completed
exactly once.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from dragedit_protocol.client import DaemonClient
from dragedit_protocol.messages import TERMINAL_TYPES

from ..daemon.process import DaemonProcess

# the cheapest real job, used for every parameter the method has (others come from --param)
CHEAP = {"lora_steps": 0, "drag_steps": 1, "inversion_strength": 0.02}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dragedit bench load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="clients submitting at once (default 8)")
    parser.add_argument("--jobs", type=int, default=25, help="jobs per client (default 25)")
    parser.add_argument("--endpoint", help="use this running daemon instead of starting one")
    parser.add_argument("--model", help="model for the started daemon (default: a tiny random model)")
    parser.add_argument("--method", default="dragdiffusion", help="method to run (default dragdiffusion)")
    parser.add_argument("--param", action="append", default=[], metavar="K=V", help="method parameter; repeatable")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    parser.add_argument("--devices", default=None, metavar="LIST",
                        help="the started daemon's workers, e.g. cpu,cpu for two CPU workers (default: one)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for all results")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.jobs < 1 or args.size < 8:
        parser.error("--clients and --jobs must be at least 1, --size at least 8")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with bench_daemon(args.endpoint, args.model, "load", args.devices) as (endpoint, daemon):
        report = run_load(endpoint, args, daemon)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    ok = report["completed"] == report["submitted"] and report["lost"] == report["duplicated"] == 0
    return 0 if ok else 1


@contextmanager
def bench_daemon(endpoint: str | None, model: str | None, bench: str,
                 devices: str | None = None) -> Iterator[tuple[str, DaemonProcess | None]]:
    """(endpoint, process) of the daemon a benchmark measures: the one running at ``endpoint``, or
    one started in a scratch folder for the benchmark and stopped afterwards (process None: not ours)."""
    if endpoint:
        yield endpoint, None
        return
    with tempfile.TemporaryDirectory(prefix=f"dragedit-bench-{bench}-") as scratch:
        daemon = start_daemon(Path(scratch), model, devices)
        try:
            yield daemon.endpoint, daemon
        finally:
            daemon.stop()


def start_daemon(scratch: Path, model: str | None, devices: str | None = None) -> DaemonProcess:
    if model is None:
        from ..engine.models import build_random_model

        model = str(build_random_model(scratch / "tiny-model", layout="tiny"))
    extra = ("--device", "cpu", "--dtype", "fp32", "--work-size", "64", *(("--devices", devices) if devices else ()))
    daemon = DaemonProcess(scratch / "home", model, extra=extra)
    daemon.start().wait_ready()
    return daemon


def images(count: int, size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        rgba = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
        rgba[..., 3] = 255
        out.append(rgba)
    return out


def job_params(welcome: dict, method: str, extra: list[str]) -> dict[str, Any]:
    from ..cli import parse_params

    schema = next((m for m in welcome.get("methods", []) if m["name"] == method), None)
    if schema is None:
        raise SystemExit(f"the daemon has no method '{method}'")
    names = {p["name"] for p in schema["params"]}
    return {**{k: v for k, v in CHEAP.items() if k in names}, **parse_params(extra)}


class Tally:
    """What each job went through, from submit to its final message(s)."""

    def __init__(self) -> None:
        self.submitted: dict[str, float] = {}
        self.owner: dict[str, int] = {}
        self.finals: dict[str, list[tuple[str, float]]] = defaultdict(list)
        self.strangers = 0  # final messages for jobs nobody here submitted
        self.max_position = 0

    def record(self, message: dict) -> None:
        job_id = message.get("job_id")
        if message["type"] == "queued":
            self.max_position = max(self.max_position, message["position"])
        if message["type"] in TERMINAL_TYPES:
            if job_id in self.submitted:
                self.finals[job_id].append((message["type"] if message["type"] != "error" else message["code"],
                                            time.monotonic()))
            else:
                self.strangers += 1

    def done(self) -> bool:
        return all(job_id in self.finals for job_id in self.submitted)


def drive(clients: list[DaemonClient], tally: Tally, until, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not until():
        for client in clients:
            for message in client.poll(1):
                tally.record(message)


def connect(endpoint: str, count: int, data_folder: Path | None = None) -> list[DaemonClient]:
    """``count`` clients, ready; ``data_folder``: where the daemon's user keeps its keys (default: ours)."""
    clients = [DaemonClient(endpoint, client="dragedit-bench-load", client_version="0", data_folder=data_folder,
                            timeout_s=60) for _ in range(count)]
    drive(clients, Tally(), lambda: all(c.state == "ready" and c.welcome["state"] == "ready" for c in clients), 300)
    unready = [c.error_text for c in clients if c.state != "ready"]
    if unready:
        raise SystemExit(f"dragedit bench load: {unready[0]}")
    return clients


def submit_all(clients: list[DaemonClient], tally: Tally, pictures: list[np.ndarray], per_client: int,
               method: str, params: dict[str, Any]) -> None:
    size = pictures[0].shape[0]
    points = [(size * 0.3, size * 0.3, size * 0.5, size * 0.4)]
    for index, client in enumerate(clients):
        picture = pictures[index]
        for _ in range(per_client):
            job_id = client.submit(method, picture.tobytes(), size, size, points, params=params, seed=index)
            tally.submitted[job_id] = time.monotonic()
            tally.owner[job_id] = index


def run_load(endpoint: str, args: argparse.Namespace, daemon: DaemonProcess | None) -> dict[str, Any]:
    clients = connect(endpoint, args.clients, daemon.home if daemon else None)
    try:
        params = job_params(clients[0].welcome, args.method, args.param)
        pictures = images(args.clients, args.size)
        warm = Tally()
        submit_all(clients, warm, pictures, 1, args.method, params)  # fill the caches with every image
        drive(clients, warm, warm.done, args.timeout)
        time.sleep(1.0)
        idle_rss = daemon.rss_bytes() if daemon else None

        tally = Tally()
        started = time.monotonic()
        submit_all(clients, tally, pictures, args.jobs, args.method, params)
        drive(clients, tally, tally.done, args.timeout)
        elapsed = time.monotonic() - started
        drive(clients, tally, lambda: False, 2.0)  # late duplicates would arrive now
        time.sleep(1.0)
        after_rss = daemon.rss_bytes() if daemon else None
    finally:
        for client in clients:
            client.close()
    return summarise(tally, args, elapsed, idle_rss, after_rss, started)


def summarise(tally: Tally, args: argparse.Namespace, elapsed: float, idle_rss: int | None,
              after_rss: int | None, started: float) -> dict[str, Any]:
    outcomes = Counter(finals[0][0] for finals in tally.finals.values())
    latencies = sorted(finals[0][1] - tally.submitted[job] for job, finals in tally.finals.items())
    first_result = {}
    for job, finals in tally.finals.items():
        owner = tally.owner[job]
        first_result[owner] = min(first_result.get(owner, float("inf")), finals[0][1] - started)

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) if latencies else None

    mb = (lambda v: None if v is None else round(v / 2**20, 1))
    return {
        "clients": args.clients,
        "jobs_per_client": args.jobs,
        "devices": args.devices,
        "submitted": len(tally.submitted),
        "completed": outcomes.get("result", 0),
        "failed": sum(n for kind, n in outcomes.items() if kind != "result"),
        "failures": {kind: n for kind, n in outcomes.items() if kind != "result"},
        "lost": len(tally.submitted) - len(tally.finals),
        "duplicated": sum(len(f) - 1 for f in tally.finals.values()) + tally.strangers,
        "seconds": round(elapsed, 1),
        "jobs_per_second": round(len(tally.finals) / elapsed, 2) if elapsed else None,
        "latency_s": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1.0),
                      "mean": round(statistics.fmean(latencies), 2) if latencies else None},
        "first_result_s": {"fastest_client": round(min(first_result.values()), 2) if first_result else None,
                           "slowest_client": round(max(first_result.values()), 2) if first_result else None},
        "max_queue_position": tally.max_position,
        "daemon_rss_mb": {"idle_after_warmup": mb(idle_rss), "after_load": mb(after_rss),
                          "growth": mb(after_rss - idle_rss) if idle_rss and after_rss else None},
    }


def format_report(r: dict[str, Any]) -> str:
    lat, first, rss = r["latency_s"], r["first_result_s"], r["daemon_rss_mb"]
    lines = [
        f"load: {r['clients']} clients x {r['jobs_per_client']} jobs in {r['seconds']}s ({r['jobs_per_second']} jobs/s)"
        + (f" on workers {r['devices']}" if r.get("devices") else ""),
        f"  submitted  {r['submitted']}",
        f"  completed  {r['completed']}",
        f"  failed     {r['failed']}" + (f"  {r['failures']}" if r["failures"] else ""),
        f"  lost       {r['lost']}",
        f"  duplicated {r['duplicated']}",
        f"  latency    p50 {lat['p50']}s  p90 {lat['p90']}s  p99 {lat['p99']}s  max {lat['max']}s",
        f"  fairness   first result per client after {first['fastest_client']}s .. {first['slowest_client']}s; "
        f"longest queue position {r['max_queue_position']}",
        f"  memory     daemon RSS {rss['idle_after_warmup']} MB idle after warm-up, {rss['after_load']} MB after the "
        f"load ({'+' if (rss['growth'] or 0) >= 0 else ''}{rss['growth']} MB)",
    ]
    return "\n".join(lines)
