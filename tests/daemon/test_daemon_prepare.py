"""Prepares over real loopback sockets, with the engine double: progress and ready, no repeats, a drag
that never waits behind a prepare, superseding, and bad prepares."""
from __future__ import annotations

from daemon_support import all_final, final, image, pump, ready, submit
from dragedit_protocol.client import DaemonClient
from engine_double import EngineDouble


def start_with_double(start_daemon, **options) -> tuple[object, EngineDouble]:
    made: list[EngineDouble] = []

    def factory(settings):
        made.append(EngineDouble(settings))
        return made[-1]

    daemon = start_daemon(factory, **options)
    return daemon, made


def prepare(client: DaemonClient, rgba=None, method: str | None = "double", **params) -> str:
    rgba = image() if rgba is None else rgba
    return client.prepare(rgba.tobytes(), rgba.shape[1], rgba.shape[0], method=method, params=params)


def states(seen: list[dict], prepare_id: str) -> list[str]:
    return [m["state"] for m in seen if m["type"] == "prepared" and m["prepare_id"] == prepare_id]


def prepared(prepare_id: str, state: str):
    return lambda seen: state in states(seen, prepare_id)


def test_a_prepare_reports_its_steps_and_ready_and_an_equal_one_is_answered_not_repeated(start_daemon, connect):
    daemon, engines = start_with_double(start_daemon)
    first, second = connect(daemon.bound_endpoint), connect(daemon.bound_endpoint)
    ready(first), ready(second)
    prepare_id = prepare(first, steps=3)
    seen = pump([first], prepared(prepare_id, "ready"))
    assert states(seen, prepare_id) == ["queued", "running", "running", "running", "running", "ready"]
    steps = [(m["step"], m["total"]) for m in seen if m.get("prepare_id") == prepare_id and m["state"] == "running"]
    assert steps[-1] == (3, 3)
    assert seen[-1]["cached"] == {"lora": False, "inversion": False}
    again = prepare(second, steps=3)  # another client, the same image and settings
    seen = pump([second], prepared(again, "ready"))
    assert states(seen, again) == ["ready"] and len(engines[0].prepared) == 1
    assert seen[-1]["cached"] == {"lora": True, "inversion": True}


def test_a_drag_submitted_during_a_prepare_runs_first_and_the_prepare_finishes_after(start_daemon, connect):
    daemon, engines = start_with_double(start_daemon)
    client = connect(daemon.bound_endpoint)
    ready(client)
    prepare_id = prepare(client, steps=400, step_s=0.01)
    pump([client], lambda seen: any(m.get("state") == "running" and m.get("step", 0) >= 2 for m in seen))
    job_id = submit(client, params={"steps": 2})
    seen = pump([client], lambda seen: final(seen, job_id) is not None and "ready" in states(seen, prepare_id))
    order = [m["type"] if m["type"] != "prepared" else m["state"] for m in seen]
    assert order.index("result") < order.index("ready")
    assert "queued" in order[:order.index("result")]  # the prepare stopped and waited again for the drag
    assert engines[0].stopped_prepares == 1 and len(engines[0].prepared) == 2


def test_a_newer_prepare_of_the_same_client_supersedes_its_unfinished_one(start_daemon, connect):
    daemon, engines = start_with_double(start_daemon)
    client = connect(daemon.bound_endpoint)
    ready(client)
    old = prepare(client, image(16, 12), steps=400, step_s=0.01)
    pump([client], prepared(old, "running"))
    new = prepare(client, image(20, 12), steps=2)
    seen = pump([client], prepared(new, "ready"))
    assert "superseded" in states(seen, old) and "ready" not in states(seen, old)
    assert engines[0].stopped_prepares == 1


def test_a_prepare_another_client_still_waits_for_is_not_dropped_when_one_moves_on(start_daemon, connect):
    daemon, engines = start_with_double(start_daemon)
    first, second = connect(daemon.bound_endpoint), connect(daemon.bound_endpoint)
    ready(first), ready(second)
    shared = prepare(first, steps=30, step_s=0.01)
    also = prepare(second, steps=30, step_s=0.01)
    seen = pump([first, second], prepared(also, "running"))  # two connections: wait until both are in
    prepare(first, image(20, 12), steps=1)
    seen += pump([first, second], prepared(also, "ready"))
    assert "superseded" in states(seen, shared) and engines[0].stopped_prepares == 0


def test_an_equal_prepare_arriving_while_a_dropped_one_stops_is_run_again(start_daemon, connect):
    daemon, engines = start_with_double(start_daemon)
    first, second = connect(daemon.bound_endpoint), connect(daemon.bound_endpoint)
    ready(first), ready(second)
    dropped = prepare(first, steps=3, step_s=1.0)
    pump([first], lambda seen: any(m.get("prepare_id") == dropped and m.get("step") == 1 for m in seen))
    prepare(first, image(20, 12), steps=1)  # nobody waits for the first image now: it stops at its next step
    pump([first], prepared(dropped, "superseded"))
    wanted = prepare(second, steps=3, step_s=1.0)  # ...but now another client wants it, while it still runs
    seen = pump([second], prepared(wanted, "ready"))
    assert states(seen, wanted)[0] == "queued" and engines[0].stopped_prepares == 1


def test_bad_prepares_fail_with_a_reason_and_the_daemon_keeps_serving(start_daemon, connect):
    daemon, _ = start_with_double(start_daemon, allow_models=("org/allowed",))
    client = connect(daemon.bound_endpoint)
    ready(client)
    unknown = prepare(client, method="nope")
    bad_param = prepare(client, steps=0)
    other_model = client.prepare(image().tobytes(), 16, 12, model="/somewhere/else")
    seen = pump([client], lambda seen: all("failed" in states(seen, i) for i in (unknown, bad_param, other_model)))
    errors = {m["prepare_id"]: m["error"] for m in seen if m.get("state") == "failed"}
    assert errors[unknown]["code"] == "unknown_method" and "double" in errors[unknown]["hint"]
    assert errors[bad_param]["code"] == "bad_param"
    assert errors[other_model]["code"] == "model_not_allowed"
    wrong_size = client.prepare(b"\x00" * 10, 16, 12)  # refused by the client's own checks
    seen = pump([client], prepared(wrong_size, "failed"))
    assert seen[-1]["error"]["code"] == "bad_image"
    job_id = submit(client)
    assert final(pump([client], all_final(job_id)), job_id)["type"] == "result"


def test_status_counts_the_prepares(start_daemon, connect):
    daemon, _ = start_with_double(start_daemon)
    client = connect(daemon.bound_endpoint)
    ready(client)
    prepare_id = prepare(client, steps=1)
    pump([client], prepared(prepare_id, "ready"))
    client.request_status()
    status = next(m for m in pump([client], lambda seen: any(m["type"] == "status" for m in seen))
                  if m["type"] == "status")
    assert status["prepare"] == {"waiting": 0, "running": False, "done": 1}
