"""``dragedit bench fuzz``: throw random, truncated and mutated messages at a daemon.

Every kind of message is sent broken in every way: random bytes, valid messages cut short or
with bytes overwritten, valid envelopes with a wrong value in one field (negative sizes, NaN
coordinates, wrong types, huge strings), and a set of known-nasty messages (100k points, a
1 GB declared image, unknown methods and parameters, extension types, nesting bombs, path-like
job ids, extra frames). A few valid messages keep the normal replies flowing. Every message
must be answered; the daemon must not die. A probe client pings all along and records the
longest time the daemon's I/O thread took to answer (the longest stall). Then one message of each
expensive shape (an object bomb, a big field in a ping, deep nesting, a big submit) per size shows
what a single message costs: the daemon's peak memory above its idle size, and the stall.
Prints messages sent, replies by type, unanswered messages, daemon crashes, memory growth, the
longest stall and the cost per message size; exit status 0 when nothing went unanswered and the
daemon lived.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgpack
import zmq

from dragedit_protocol import messages
from dragedit_protocol.keys import CurveKeys, local_client_keys

from ..daemon.process import DaemonProcess
from .load import bench_daemon

KINDS = ("random_bytes", "truncated", "mutated", "wrong_field", "nasty", "valid")
WEIGHTS = (15, 15, 20, 35, 10, 5)
ANSWERS = ("error", "welcome", "pong", "status")  # one of these, or a first 'queued', answers a message
CHEAP = {"lora_steps": 0, "drag_steps": 1, "inversion_strength": 0.02}
EVIL = [None, True, False, -1, 0, 2**63, 2**64 - 1, -(2**63), math.nan, math.inf, -math.inf, 1e308, -0.0, "",
        "x" * 5000, "é\u0000", b"\x00" * 10, [], [1, 2, 3], {}, {"a": 1}, [[[[]]]], {"width": -1}]


class Fuzzer:
    """Makes one broken message at a time (a list of frames), reproducibly from a seed."""

    def __init__(self, seed: int, method: str):
        self.rng = random.Random(seed)
        self.method = method
        self._nasties = [msgpack.packb(m, use_bin_type=True) if isinstance(m, dict) else m for m in nasty_messages(method)]

    def next(self) -> tuple[str, list[bytes]]:
        kind = self.rng.choices(KINDS, WEIGHTS)[0]
        return kind, getattr(self, f"_{kind}")()

    def valid(self, submit_ok: bool = True) -> dict[str, Any]:
        rng = self.rng
        choice = rng.choice(("hello", "ping", "status", "fetch", "cancel", "submit") if submit_ok else
                            ("hello", "ping", "status", "fetch", "cancel"))
        job_id = f"fuzz-{rng.getrandbits(64):016x}"
        if choice == "hello":
            return messages.hello("fuzzer", "0", "none", "0")
        if choice in ("fetch", "cancel"):
            return getattr(messages, choice)(job_id)
        if choice == "submit":
            side = rng.randint(8, 16)
            data = bytes(rng.getrandbits(8) for _ in range(side * side * 4))
            return messages.submit(job_id, self.method, data, side, side, [(1, 1, side - 2, side - 3)], params=CHEAP)
        return messages.ping() if choice == "ping" else messages.status_request()

    def _valid(self) -> list[bytes]:
        return [messages.encode(self.valid())]

    def _random_bytes(self) -> list[bytes]:
        return [self.rng.randbytes(self.rng.randint(0, 300))]

    def _truncated(self) -> list[bytes]:
        data = messages.encode(self.valid())
        return [data[: self.rng.randint(0, len(data) - 1)]]

    def _mutated(self) -> list[bytes]:
        data = bytearray(messages.encode(self.valid()))
        for _ in range(self.rng.randint(1, 8)):
            data[self.rng.randrange(len(data))] = self.rng.getrandbits(8)
        return [bytes(data)]

    def _wrong_field(self) -> list[bytes]:
        message = {**self.valid(), "v": messages.PROTOCOL_VERSION}
        target = message
        if message["type"] == "submit" and self.rng.random() < 0.4:
            target = message["image"] = dict(message["image"])  # a field inside the image map
        key = self.rng.choice([*target, "unexpected"])
        target[key] = self.rng.choice(EVIL)
        return [msgpack.packb(message, use_bin_type=True)]

    def _nasty(self) -> list[bytes]:
        pick = self.rng.choice(self._nasties)
        return pick if isinstance(pick, list) else [pick]


def nasty_messages(method: str) -> list[dict | bytes | list[bytes]]:
    """Known-bad messages: each must get an error reply (extra frames: one reply)."""
    v = messages.PROTOCOL_VERSION
    image = {"width": 8, "height": 8, "data": bytes(256)}
    base = {"v": v, "type": "submit", "job_id": "nasty", "method": method, "image": image, "points": [[1, 1, 5, 5]]}
    return [
        {**base, "points": [[1.0, 2.0, 3.0, 4.0]] * 100_000},
        {**base, "points": [[1, 1, 5, 5]] * 65},
        {**base, "image": {"width": 32768, "height": 32768, "data": bytes(16)}},  # 1 GB declared, 16 bytes sent
        {**base, "image": {"width": 16384, "height": 16384, "data": bytes(16)}},
        {**base, "image": {"width": -8, "height": 8, "data": bytes(256)}},
        {**base, "image": {"width": 8, "height": 8, "data": bytes(255)}},
        {**base, "points": [[math.nan, 1, 5, 5]]},
        {**base, "points": [[1, 1, math.inf, 5]]},
        {**base, "points": [[1, 1, 500, 5]]},
        {**base, "method": "no-such-method"},
        {**base, "params": {"no_such_param": 1}},
        {**base, "params": {"drag_steps": -5}},
        {**base, "params": {"drag_steps": "many"}},
        {**base, "job_id": "../../../etc/passwd"},
        {**base, "job_id": "x" * 200},
        {**base, "mask": {"width": 4, "height": 4, "data": bytes(16)}},
        {**base, "seed": -1},
        {**base, "prompt": "p" * 100_000},
        {"v": v + 1, "type": "ping"},
        {"v": v, "type": "shutdown"},
        {"v": v, "type": "fetch", "job_id": "never-submitted"},
        {"v": v, "type": "cancel", "job_id": "never-submitted"},
        msgpack.packb({"v": v, "type": "ping", "x": msgpack.ExtType(5, b"pickle?")}),
        b"\x91" * 200_000 + b"\xc0",
        b"\xdd\xff\xff\xff\xff",
        b"\xc6\x3f\xff\xff\xff",
        msgpack.packb(list(range(10))),
        [messages.encode(messages.ping()), b"second frame"],
        [b"", b"", b""],
    ]


def object_bomb(size: int) -> bytes:
    """A ping with an extra field of arrays of empty arrays: one byte per Python list, ``size`` bytes."""
    inner = b"\xdc\x0f\xff" + b"\x90" * 4095  # an array of 4095 empty arrays
    count = max(1, size // len(inner))
    head = msgpack.packb({"v": messages.PROTOCOL_VERSION, "type": "ping"})[1:]
    return b"\x83" + head + msgpack.packb("x") + b"\xdd" + count.to_bytes(4, "big") + inner * count


def big_field(size: int) -> bytes:
    """A ping carrying ``size`` bytes in an extra field."""
    return msgpack.packb({"v": messages.PROTOCOL_VERSION, "type": "ping", "x": bytes(size)}, use_bin_type=True)


def deep_nesting(depth: int = 1000) -> bytes:
    """A ping with an extra field nested ``depth`` arrays deep."""
    head = msgpack.packb({"v": messages.PROTOCOL_VERSION, "type": "ping"})[1:]
    return b"\x83" + head + msgpack.packb("x") + b"\x91" * depth + b"\xc0"


def big_submit(size: int) -> bytes:
    """A well-formed submit of about ``size`` bytes for a method no daemon has (decoded, then refused)."""
    side = max(8, int(math.sqrt(size / 4)))
    message = messages.submit("cost-probe", "no-such-method", bytes(side * side * 4), side, side, [(1, 1, 5, 5)])
    return messages.encode(message)


COST_SHAPES = {"object bomb": object_bomb, "big field": big_field, "big submit": big_submit}


def bench_socket(context: zmq.Context, endpoint: str, keys: CurveKeys) -> zmq.Socket:
    """A DEALER socket connected to the daemon with the user's local CurveZMQ keys."""
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    keys.apply(socket)
    socket.connect(endpoint)
    return socket


class StallProbe(threading.Thread):
    """Pings the daemon every 10 ms from its own socket; ``take_longest()`` is the longest wait for a
    pong since the last call (how long the daemon's I/O thread did not answer)."""

    def __init__(self, endpoint: str, keys: CurveKeys):
        super().__init__(name="stall-probe", daemon=True)
        self._context = zmq.Context()
        self._socket = bench_socket(self._context, endpoint, keys)
        self._halt = threading.Event()
        self._longest = 0.0
        self._lock = threading.Lock()

    def run(self) -> None:
        ping = messages.encode(messages.ping())
        try:
            while not self._halt.is_set():
                sent = time.monotonic()
                self._socket.send(ping)
                while not self._halt.is_set() and not self._socket.poll(100):
                    pass
                if self._halt.is_set():
                    break
                self._socket.recv()
                with self._lock:
                    self._longest = max(self._longest, time.monotonic() - sent)
                time.sleep(0.01)
        finally:
            self._socket.close(linger=0)
            self._context.term()

    def take_longest(self) -> float:
        with self._lock:
            longest, self._longest = self._longest, 0.0
        return longest

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def message_costs(endpoint: str, keys: CurveKeys, daemon: DaemonProcess | None, probe: StallProbe,
                  sizes_mb: tuple[int, ...]) -> list[dict[str, Any]]:
    """Send one message of each expensive shape per size; the reply, the daemon's peak RSS above its
    size before the message (Linux, a daemon started here) and the longest stall while it was handled."""
    shapes = [("deep nesting", 1000 + 20, deep_nesting())]
    shapes += [(name, mb * 2**20, make(mb * 2**20)) for mb in sizes_mb for name, make in COST_SHAPES.items()]
    context = zmq.Context()
    socket = bench_socket(context, endpoint, keys)
    rows = []
    try:
        for name, size, data in shapes:
            time.sleep(0.3)
            before = daemon.reset_peak_rss() if daemon else None
            probe.take_longest()
            socket.send(data)
            reply = messages.decode_daemon(socket.recv()) if socket.poll(300_000) else {"type": "no reply"}
            time.sleep(0.1)
            peak = daemon.peak_rss_bytes() if daemon else None
            rows.append({"shape": name, "bytes": len(data),
                         "reply": reply.get("code") or reply["type"],
                         "peak_rss_mb": round((peak - before) / 2**20, 1) if peak and before else None,
                         "stall_ms": round(probe.take_longest() * 1000)})
            del data
    finally:
        socket.close(linger=0)
        context.term()
    return rows


class Driver:
    """Sends through one DEALER socket, keeping at most ``window`` messages unanswered."""

    def __init__(self, endpoint: str, keys: CurveKeys, window: int = 64, stall_s: float = 30.0):
        self.context = zmq.Context()
        self.socket = bench_socket(self.context, endpoint, keys)
        self.window = window
        self.stall_s = stall_s
        self.sent = 0
        self.answered = 0
        self.replies: Counter[str] = Counter()
        self.accepted: set[str] = set()
        self.bad_replies = 0

    def send(self, frames: list[bytes]) -> bool:
        """Send one message; False when the daemon stopped answering for ``stall_s``."""
        deadline = time.monotonic() + self.stall_s
        while self.sent - self.answered >= self.window:
            if time.monotonic() > deadline:
                return False
            self.receive(100)
        self.socket.send_multipart(frames)
        self.sent += 1
        self.receive(0)
        return True

    def receive(self, timeout_ms: int) -> None:
        if not self.socket.poll(timeout_ms):
            return
        while True:
            try:
                data = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                reply = messages.decode_daemon(data)
            except messages.ProtocolError:
                self.bad_replies += 1
                continue
            kind = reply["type"]
            self.replies[kind] += 1
            if kind in ANSWERS:
                self.answered += 1
            elif kind == "queued" and reply["job_id"] not in self.accepted:
                self.accepted.add(reply["job_id"])
                self.answered += 1

    def settle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.sent > self.answered and time.monotonic() < deadline:
            self.receive(100)

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()


def run_fuzz(endpoint: str, count: int, seed: int, method: str, daemon: DaemonProcess | None = None,
             progress: bool = False, data_folder: Path | None = None,
             cost_sizes_mb: tuple[int, ...] = ()) -> dict[str, Any]:
    """Send ``count`` fuzzed messages, then the expensive shapes of ``cost_sizes_mb``; returns the
    counts (see ``format_report``). ``data_folder``: where the daemon's user keeps its keys."""
    keys = local_client_keys(data_folder)
    fuzzer = Fuzzer(seed, method)
    driver = Driver(endpoint, keys)
    probe = StallProbe(endpoint, keys)
    probe.start()
    sent_kinds: Counter[str] = Counter()
    crashed = False
    costs: list[dict[str, Any]] = []
    rss_before = daemon.rss_bytes() if daemon else None
    started = time.monotonic()
    try:
        for index in range(count):
            kind, frames = fuzzer.next()
            if not driver.send(frames):
                crashed = daemon is not None and not daemon.alive()
                break
            sent_kinds[kind] += 1
            if progress and index and index % 10_000 == 0:
                print(f"  {index} messages, {driver.replies['error']} errors", file=sys.stderr)
        driver.settle(30)
        elapsed = time.monotonic() - started
        for job_id in driver.accepted:  # do not leave the fuzzer's valid jobs running
            driver.socket.send(messages.encode(messages.cancel(job_id)))
        driver.settle(5)
        longest_stall = probe.take_longest()
        if not crashed and cost_sizes_mb:
            costs = message_costs(endpoint, keys, daemon, probe, cost_sizes_mb)
    finally:
        driver.close()
        probe.stop()
    crashed = crashed or (daemon is not None and not daemon.alive())
    alive = answers_hello(endpoint, data_folder) if not crashed else False
    time.sleep(1.0)
    rss_after = daemon.rss_bytes() if daemon else None
    mb = (lambda v: None if v is None else round(v / 2**20, 1))
    return {
        "messages": sum(sent_kinds.values()),
        "seconds": round(elapsed, 1),
        "seed": seed,
        "sent": dict(sent_kinds),
        "replies": dict(driver.replies),
        "error_replies": driver.replies["error"],
        "unanswered": driver.sent - driver.answered,
        "unreadable_replies": driver.bad_replies,
        "jobs_accepted": len(driver.accepted),
        "daemon_crashes": 0 if alive else 1,
        "daemon_rss_mb": {"before": mb(rss_before), "after": mb(rss_after),
                          "growth": mb(rss_after - rss_before) if rss_before and rss_after else None},
        "longest_stall_ms": round(longest_stall * 1000),
        "message_costs": costs,
    }


def warm_up(endpoint: str, method: str, data_folder: Path | None = None) -> None:
    """Run one ordinary job to the end."""
    from .load import Tally, connect, drive, images, job_params, submit_all

    clients = connect(endpoint, 1, data_folder)
    try:
        tally = Tally()
        submit_all(clients, tally, images(1, 16), 1, method, job_params(clients[0].welcome, method, []))
        drive(clients, tally, tally.done, 600)
    finally:
        clients[0].close()


def answers_hello(endpoint: str, data_folder: Path | None = None, timeout_s: float = 30.0) -> bool:
    from dragedit_protocol.client import DaemonClient

    client = DaemonClient(endpoint, client="dragedit-bench-fuzz", client_version="0", data_folder=data_folder,
                          timeout_s=timeout_s)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if any(m["type"] == "welcome" for m in client.poll(100)):
                return True
        return False
    finally:
        client.close()


def format_report(r: dict[str, Any]) -> str:
    rss = r["daemon_rss_mb"]
    rate = round(r["messages"] / r["seconds"]) if r["seconds"] else "-"
    return "\n".join([
        f"fuzz: {r['messages']} messages in {r['seconds']}s ({rate}/s), seed {r['seed']}",
        "  sent        " + ", ".join(f"{k} {v}" for k, v in sorted(r["sent"].items())),
        "  replies     " + ", ".join(f"{k} {v}" for k, v in sorted(r["replies"].items())),
        f"  errors      {r['error_replies']}",
        f"  unanswered  {r['unanswered']}",
        f"  jobs        {r['jobs_accepted']} valid submits accepted (cancelled at the end)",
        f"  crashes     {r['daemon_crashes']}",
        f"  memory      daemon RSS {rss['before']} MB before, {rss['after']} MB after ({rss['growth']} MB)",
        f"  stall       longest wait for a pong while fuzzing {r['longest_stall_ms']} ms",
        *format_costs(r["message_costs"]),
    ])


def format_costs(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["  one message: shape, size -> reply, daemon peak RSS above idle, longest I/O stall"]
    for row in rows:
        size = f"{row['bytes'] / 2**20:.1f} MB" if row["bytes"] >= 2**20 else f"{row['bytes']} B"
        peak = "-" if row["peak_rss_mb"] is None else f"+{row['peak_rss_mb']} MB"
        lines.append(f"    {row['shape']:<13} {size:>9} -> {row['reply']:<14} peak RSS {peak:>11}  "
                     f"stall {row['stall_ms']} ms")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dragedit bench fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="how many messages (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--endpoint", help="fuzz this running daemon instead of starting one")
    parser.add_argument("--model", help="model for the started daemon (default: a tiny random model)")
    parser.add_argument("--method", default="dragdiffusion", help="method named in valid submits")
    parser.add_argument("--cost-sizes", default="1,4,16", metavar="MB,MB",
                        help="sizes of the single expensive messages, in MB (default 1,4,16; '' for none)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)
    sizes = tuple(int(v) for v in args.cost_sizes.split(",") if v.strip())
    with bench_daemon(args.endpoint, args.model, "fuzz") as (endpoint, daemon):
        folder = daemon.home if daemon else None
        warm_up(endpoint, args.method, folder)  # so that memory growth is not the engine's first-job allocations
        report = run_fuzz(endpoint, args.messages, args.seed, args.method, daemon, progress=True,
                          data_folder=folder, cost_sizes_mb=sizes)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["daemon_crashes"] == 0 and report["unanswered"] == 0 else 1
