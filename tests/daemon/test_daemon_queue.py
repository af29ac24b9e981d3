"""Daemon behaviour over real loopback sockets, with an engine double (fast, scriptable):
queue positions, cancel, bad input, faults inside a job, heartbeats, fetch, limits."""
from __future__ import annotations

import time

import numpy as np
import pytest

from daemon_support import all_final, eventually, final, image, local_job_key, pump, raw_socket, ready, submit
from dragedit.daemon.results import ResultStore
from engine_double import EngineDouble


def test_welcome_describes_the_daemon_and_the_methods(start_daemon, connect):
    daemon = start_daemon()
    welcome = ready(connect(daemon.bound_endpoint))
    assert welcome["protocol"] == 1 and welcome["daemon_version"] and welcome["instance"] == daemon.instance
    assert welcome["device"] == "cpu" and welcome["model"] == "double-model"
    assert [m["name"] for m in welcome["methods"]] == ["double"]
    assert {p["name"] for p in welcome["methods"][0]["params"]} == {"steps", "step_s", "fault"}
    assert welcome["limits"]["max_points"] == 64 and welcome["secure"] is True


def test_welcome_arrives_while_the_model_loads_and_again_when_it_is_ready(start_daemon, connect):
    daemon = start_daemon(lambda settings: EngineDouble(settings, load_s=1.5))
    client = connect(daemon.bound_endpoint)
    first = pump([client], lambda seen: any(m["type"] == "welcome" for m in seen), 5)[0]
    assert first["state"] == "loading model" and first["methods"] == []
    seen = pump([client], lambda seen: any(m["type"] == "welcome" and m["state"] == "ready" for m in seen), 10)
    assert seen[-1]["methods"][0]["name"] == "double"


def test_submit_gets_queued_progress_and_result(start_daemon, connect):
    daemon = start_daemon()
    client = connect(daemon.bound_endpoint)
    ready(client)
    rgba = image(16, 12)
    job_id = submit(client, rgba, params={"steps": 3}, seed=11, points=[(2, 2, 6, 5), (10, 3, 12, 9)])
    seen = pump([client], all_final(job_id))
    kinds = [m["type"] for m in seen if m.get("job_id") == job_id]
    assert kinds == ["queued", "progress", "progress", "progress", "result"]
    assert seen[0]["position"] == 0  # nothing ahead: it runs at once
    progress = seen[1]
    assert progress["phase"] == "drag" and progress["total"] == 3 and progress["handles"] == [[2, 2], [10, 3]]
    assert progress["preview"]["width"] == 6 and len(progress["preview"]["data"]) == 6 * 4 * 3
    result = final(seen, job_id)
    out = np.frombuffer(result["image"]["data"], np.uint8).reshape(12, 16, 4)
    assert np.array_equal(out[..., :3], 255 - rgba[..., :3]) and np.array_equal(out[..., 3], rgba[..., 3])
    assert result["handles"] == [[6, 5], [12, 9]] and result["seed"] == 11
    assert result["stats"] == {"unet_forward": 3} and result["timings"] == {"drag": 0.01}


def test_queue_positions_are_announced_and_updated(start_daemon, connect):
    daemon = start_daemon()
    client = connect(daemon.bound_endpoint)
    ready(client)
    slow = {"steps": 20, "step_s": 0.02}
    jobs = [submit(client, params=slow) for _ in range(3)]
    seen = pump([client], all_final(*jobs))
    positions = {job: [m["position"] for m in seen if m["type"] == "queued" and m["job_id"] == job] for job in jobs}
    assert positions[jobs[0]] == [0]
    assert positions[jobs[1]] == [1, 0]
    assert positions[jobs[2]] == [2, 1, 0]
    finished = [m["job_id"] for m in seen if m["type"] == "result"]
    assert finished == jobs


def test_two_clients_get_their_own_results(start_daemon, connect):
    daemon = start_daemon()
    a, b = connect(daemon.bound_endpoint), connect(daemon.bound_endpoint)
    ready(a), ready(b)
    image_a, image_b = image(8, 8), image(20, 10)
    job_a, job_b = submit(a, image_a), submit(b, image_b)
    seen = pump([a, b], all_final(job_a, job_b))
    assert all(m["_client"] == 0 for m in seen if m.get("job_id") == job_a)
    assert all(m["_client"] == 1 for m in seen if m.get("job_id") == job_b)
    assert final(seen, job_a)["image"]["width"] == 8 and final(seen, job_b)["image"]["width"] == 20


def test_cancel_a_queued_and_a_running_job(start_daemon, connect):
    engine = {}
    daemon = start_daemon(lambda settings: engine.setdefault("e", EngineDouble(settings)))
    client = connect(daemon.bound_endpoint)
    ready(client)
    running = submit(client, params={"steps": 500, "step_s": 0.02})
    waiting = submit(client)
    last = submit(client)
    pump([client], lambda seen: any(m["type"] == "progress" for m in seen))
    client.cancel(waiting)
    client.cancel(running)
    seen = pump([client], all_final(running, waiting, last))
    assert final(seen, waiting)["type"] == "cancelled" and final(seen, running)["type"] == "cancelled"
    assert final(seen, last)["type"] == "result"
    assert [r.image.shape for r in engine["e"].ran] == [(12, 16, 4), (12, 16, 4)]  # the queued one never ran
    positions = [m["position"] for m in seen if m["type"] == "queued" and m["job_id"] == last]
    # 2 if the worker had not yet taken the first job when this one arrived (a loaded machine), else 1;
    # then the cancelled job's slot is released and it moves up to 0 without waiting for it
    assert positions[0] in (1, 2) and positions[-2:] == [1, 0] and positions == sorted(positions, reverse=True)


def test_cancel_of_unknown_and_finished_jobs_says_so(start_daemon, connect):
    daemon = start_daemon()
    client = connect(daemon.bound_endpoint)
    ready(client)
    job_id = submit(client)
    pump([client], all_final(job_id))
    client.cancel(job_id)
    client.cancel("never-submitted")
    seen = pump([client], lambda seen: len([m for m in seen if m["type"] == "error"]) == 2)
    codes = {m["job_id"]: m["code"] for m in seen if m["type"] == "error"}
    assert codes == {job_id: "already_finished", "never-submitted": "unknown_job"}


def test_a_bad_submit_gets_an_error_while_another_clients_job_completes(start_daemon, connect):
    daemon = start_daemon()
    good, bad = connect(daemon.bound_endpoint), connect(daemon.bound_endpoint)
    ready(good), ready(bad)
    job_id = submit(good, params={"steps": 10, "step_s": 0.02})
    unknown_method = submit(bad, method="no-such-method")
    bad_param = submit(bad, params={"steps": 0})
    unknown_param = submit(bad, params={"colour": "red"})
    seen = pump([good, bad], all_final(job_id, unknown_method, bad_param, unknown_param))
    assert final(seen, job_id)["type"] == "result"
    assert final(seen, unknown_method)["code"] == "unknown_method" and "double" in final(seen, unknown_method)["hint"]
    assert final(seen, bad_param)["code"] == "bad_param" and "steps" in final(seen, bad_param)["message"]
    assert final(seen, unknown_param)["code"] == "bad_param" and "colour" in final(seen, unknown_param)["message"]


def test_raw_garbage_gets_error_replies_and_the_daemon_keeps_serving(start_daemon, connect, home):
    daemon = start_daemon()
    raw = raw_socket(daemon.bound_endpoint, home.root)
    try:
        for data in (b"", b"\xc1garbage", b"\x93\x01\x02\x03"):
            raw.send(data)
        raw.send_multipart([b"two", b"frames"])
        replies = []
        deadline = time.monotonic() + 10
        while len(replies) < 4 and time.monotonic() < deadline:
            if raw.poll(100):
                replies.append(raw.recv())
    finally:
        raw.close()
    from dragedit_protocol import messages

    decoded = [messages.decode_daemon(r) for r in replies]
    assert [d["code"] for d in decoded] == ["bad_message"] * 4
    client = connect(daemon.bound_endpoint)
    ready(client)
    job_id = submit(client)
    assert final(pump([client], all_final(job_id)), job_id)["type"] == "result"


def test_duplicate_job_id_is_refused(start_daemon, connect):
    daemon = start_daemon()
    client = connect(daemon.bound_endpoint)
    ready(client)
    job_id = submit(client, job_id="same-id")
    pump([client], all_final(job_id))
    submit(client, job_id="same-id")
    seen = pump([client], lambda seen: any(m["type"] == "error" for m in seen))
    assert seen[-1]["code"] == "duplicate_job"


@pytest.mark.parametrize("fault, code, words", [
    ("oom", "out_of_memory", "smaller region"),
    ("crash", "internal_error", "daemon log"),
    ("edit_error", "drag_too_short", "drag further"),
])
def test_a_failing_job_ends_with_a_clear_error_and_the_next_job_runs(start_daemon, connect, fault, code, words):
    engine = {}
    daemon = start_daemon(lambda settings: engine.setdefault("e", EngineDouble(settings)))
    client = connect(daemon.bound_endpoint)
    ready(client)
    failing = submit(client, params={"fault": fault})
    after = submit(client)
    seen = pump([client], all_final(failing, after))
    error = final(seen, failing)
    assert error["type"] == "error" and error["code"] == code and words in error["hint"]
    assert final(seen, after)["type"] == "result"
    assert engine["e"].released == (0 if fault == "edit_error" else 1)  # memory freed after an unexpected failure


def test_a_model_that_fails_to_load_gives_an_error_and_the_daemon_lives(start_daemon, connect):
    daemon = start_daemon(lambda settings: EngineDouble(settings, fail_load=True))
    client = connect(daemon.bound_endpoint)
    welcome = ready(client, state="error")
    assert "no model at double-model" in welcome["error"]["message"] and "--model" in welcome["error"]["hint"]
    job_id = submit(client)
    error = final(pump([client], all_final(job_id)), job_id)
    assert error["code"] == "model_load_failed" and "double-model" in error["message"]
    client.request_status()
    status = pump([client], lambda seen: any(m["type"] == "status" for m in seen))[-1]
    assert status["state"] == "error"


def test_when_the_daemons_model_fails_a_job_naming_another_model_still_runs(start_daemon, connect):
    """First run offline: the default model cannot load, the artist picks the demo model instead."""
    class OfflineEngine(EngineDouble):
        def ensure_model(self, source=None, on_progress=None):
            if (source or self.settings.model) == self.settings.model:
                raise OSError(f"no model at {self.settings.model} (offline)")

    daemon = start_daemon(OfflineEngine)
    client = connect(daemon.bound_endpoint)
    welcome = ready(client, state="error")
    assert [m["name"] for m in welcome["methods"]], "the methods must be known even though the model failed"
    default_job = submit(client)
    assert final(pump([client], all_final(default_job)), default_job)["code"] == "model_load_failed"
    demo_job = submit(client, model="toy")
    seen = pump([client], lambda seen: all_final(demo_job)(seen) and client.welcome["state"] == "ready")
    assert final(seen, demo_job)["type"] == "result"  # and the welcome now says a model is loaded


def test_a_model_load_that_fails_on_a_full_disk_says_so(start_daemon, connect):
    import errno

    def full_disk_engine(settings):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/logs/serve.out")

    client = connect(start_daemon(full_disk_engine).bound_endpoint)
    error = ready(client, state="error")["error"]
    assert error["code"] == "disk_full" and "free space" in error["hint"] and "diffusers" not in error["hint"]


def test_a_jobs_own_vae_reaches_the_engine(start_daemon, connect):
    engine = {}

    def factory(settings):
        engine["e"] = EngineDouble(settings)
        return engine["e"]

    client = connect(start_daemon(factory).bound_endpoint)
    ready(client)
    own, default = submit(client, vae="stabilityai/sd-vae-ft-mse"), submit(client)
    seen = pump([client], all_final(own, default))
    assert final(seen, own)["type"] == final(seen, default)["type"] == "result"
    assert [r.vae for r in engine["e"].ran] == ["stabilityai/sd-vae-ft-mse", None]


def test_a_job_asking_for_a_model_that_fails_to_load_does_not_stop_the_next_one(start_daemon, connect):
    class PickyEngine(EngineDouble):
        def ensure_model(self, source=None, on_progress=None):
            if source == "broken":
                raise OSError("broken model")

    daemon = start_daemon(PickyEngine)
    client = connect(daemon.bound_endpoint)
    ready(client)
    broken, fine = submit(client, model="broken"), submit(client)
    seen = pump([client], all_final(broken, fine))
    assert final(seen, broken)["type"] == "error" and "broken model" in final(seen, broken)["message"]
    assert final(seen, fine)["type"] == "result"


def test_a_client_that_vanishes_mid_job_can_fetch_the_result_later(start_daemon, connect, home):
    daemon = start_daemon()
    first = connect(daemon.bound_endpoint)
    ready(first)
    job_id = submit(first, params={"steps": 30, "step_s": 0.02})
    pump([first], lambda seen: any(m["type"] == "progress" for m in seen))
    first.close()  # the editor was killed
    store = ResultStore(home.results, home.jobs)
    key = local_job_key(home, job_id)
    eventually(lambda: store.get(key) is not None)
    assert store.get(key)["message"]["type"] == "result"  # finished and kept on disk
    second = connect(daemon.bound_endpoint)
    ready(second)
    second.fetch(job_id)
    result = final(pump([second], all_final(job_id)), job_id)
    assert result["type"] == "result" and result["image"]["width"] == 16
    eventually(lambda: store.get(key) is None)  # fetched: removed
    second.fetch(job_id)
    assert final(pump([second], all_final(job_id)), job_id)["code"] == "unknown_job"


def test_fetch_of_a_waiting_job_moves_its_messages_to_the_new_connection(start_daemon, connect):
    daemon = start_daemon()
    first = connect(daemon.bound_endpoint)
    ready(first)
    blocker = submit(first, params={"steps": 40, "step_s": 0.02})
    waiting = submit(first)
    pump([first], lambda seen: any(m["type"] == "queued" and m["job_id"] == waiting for m in seen))
    first.close()
    second = connect(daemon.bound_endpoint)
    ready(second)
    second.fetch(waiting)
    seen = pump([second], all_final(waiting))
    assert [m["position"] for m in seen if m["type"] == "queued"][0] == 1
    assert final(seen, waiting)["type"] == "result" and final(seen, blocker) is None


def test_the_daemon_forgets_a_silent_client_and_the_client_notices_a_dead_daemon(start_daemon, connect):
    daemon = start_daemon(heartbeat_timeout_s=0.5)
    client = connect(daemon.bound_endpoint, timeout_s=1.0)
    ready(client)
    client.request_status()
    status = pump([client], lambda seen: any(m["type"] == "status" for m in seen))[-1]
    assert status["clients"] == 1
    client.close()
    observer = connect(daemon.bound_endpoint)
    ready(observer)
    quiet_until = time.monotonic() + 1.5
    while time.monotonic() < quiet_until:  # the observer keeps its heartbeat, the closed client cannot
        observer.poll(50)
    observer.request_status()
    status = pump([observer], lambda seen: any(m["type"] == "status" for m in seen))[-1]
    assert status["clients"] == 1  # only the observer is left
    daemon.stop()
    pump([observer], lambda _: observer.state == "unreachable", 10)
    assert "does not answer" in observer.error_text


def test_a_client_flooding_the_queue_is_capped_and_another_client_still_gets_in(start_daemon, connect):
    daemon = start_daemon(max_queued_per_client=3)
    flood, other = connect(daemon.bound_endpoint), connect(daemon.bound_endpoint)
    ready(flood), ready(other)
    flooded = [submit(flood, params={"steps": 10, "step_s": 0.05}) for _ in range(6)]
    seen = pump([flood], lambda seen: sum(m["type"] == "error" for m in seen) >= 2)
    assert {m["code"] for m in seen if m["type"] == "error"} == {"queue_full"}
    mine = submit(other)
    seen += pump([flood, other], lambda more: all(final(seen + more, job) for job in [*flooded, mine]))
    first_place = next(m["position"] for m in seen if m["type"] == "queued" and m["job_id"] == mine)
    assert first_place <= 2  # it waits behind at most one job of the flooding client
    outcomes = [final(seen, job)["type"] for job in flooded]
    assert outcomes.count("result") == 4 and outcomes.count("error") == 2  # one running + three waiting


def test_shutdown_tells_waiting_clients_and_records_it(start_daemon, connect, home):
    daemon = start_daemon()
    client = connect(daemon.bound_endpoint)
    ready(client)
    running = submit(client, params={"steps": 500, "step_s": 0.02})
    waiting = submit(client)
    pump([client], lambda seen: any(m["type"] == "progress" for m in seen))
    daemon.stop()
    seen = pump([client], all_final(running, waiting))
    assert final(seen, waiting)["code"] == "daemon_stopped" and final(seen, running)["type"] == "cancelled"
    store = ResultStore(home.results, home.jobs)
    assert store.get(local_job_key(home, waiting))["message"]["code"] == "daemon_stopped"
    assert list(home.jobs.iterdir()) == []  # no job is left marked unfinished


def test_a_client_that_reads_every_300_ms_still_gets_the_outcome_of_a_shutdown(start_daemon, connect):
    """The client's socket drops what it has not read when the connection closes (ZMQ_IMMEDIATE), so the
    stopping daemon keeps its connections open a moment after the last final message."""
    daemon = start_daemon()
    client = connect(daemon.bound_endpoint)
    ready(client)
    running = submit(client, params={"steps": 500, "step_s": 0.02})
    pump([client], lambda seen: any(m["type"] == "progress" for m in seen))
    daemon.stop()
    time.sleep(0.3)  # a plug-in between two of its polls; the daemon has cancelled the job by now
    seen = pump([client], all_final(running), timeout_s=5)
    assert final(seen, running)["type"] == "cancelled"


def test_a_second_daemon_is_refused_for_the_same_user_and_on_a_used_address(start_daemon, tmp_path):
    from dragedit.config import Paths
    from dragedit.daemon import DaemonError

    first = start_daemon()
    with pytest.raises(DaemonError, match="already running for this user"):
        start_daemon()  # same data folder, any address
    with pytest.raises(DaemonError, match="already in use.*--endpoint"):
        start_daemon(endpoint=first.bound_endpoint, paths=Paths(tmp_path / "other-user"))


def test_cancelling_a_running_job_from_another_connection_answers_both(start_daemon, connect):
    daemon = start_daemon()
    submitter, canceller = connect(daemon.bound_endpoint), connect(daemon.bound_endpoint)
    ready(submitter), ready(canceller)
    job_id = submit(submitter, params={"steps": 200, "step_s": 0.02})
    pump([submitter], lambda seen: any(m["type"] == "progress" for m in seen))
    canceller.cancel(job_id)
    seen = pump([submitter, canceller], lambda seen: all(
        final([m for m in seen if m["_client"] == c], job_id) is not None for c in (0, 1)), timeout_s=20)
    assert [final([m for m in seen if m["_client"] == c], job_id)["type"] for c in (0, 1)] == ["cancelled"] * 2


def test_the_bytes_waiting_in_the_queue_are_capped(start_daemon, connect):
    big = image(256, 256)  # 256 KiB of RGBA
    daemon = start_daemon(max_queued_bytes=600 * 1024)
    client = connect(daemon.bound_endpoint)
    ready(client)
    running = submit(client, big, params={"steps": 100, "step_s": 0.02})
    pump([client], lambda seen: any(m["type"] == "progress" for m in seen))
    waiting = [submit(client, big) for _ in range(3)]  # the third would hold 768 KiB in the queue
    seen = pump([client], all_final(waiting[2]))
    refused = final(seen, waiting[2])
    assert refused["code"] == "queue_full" and "--max-queued-mb" in refused["hint"] and "MB" in refused["message"]
    client.cancel(running)
    seen += pump([client], all_final(running, *waiting[:2]))
    assert [final(seen, job)["type"] for job in waiting[:2]] == ["result", "result"]


def test_a_model_name_with_a_nul_byte_is_refused_for_its_job(start_daemon, home):
    from dragedit_protocol import messages

    daemon = start_daemon()
    raw = raw_socket(daemon.bound_endpoint, home.root)
    try:
        request = messages.submit("nul-model", "double", image().tobytes(), 16, 12, [(2, 2, 6, 5)], model="/a\0b")
        raw.send(messages.encode(request))
        assert raw.poll(10_000)
        reply = messages.decode_daemon(raw.recv())
    finally:
        raw.close()
    assert reply["type"] == "error" and reply["job_id"] == "nul-model" and reply["code"] == "bad_field"


def test_a_failure_while_handling_a_submit_is_that_jobs_final_message(start_daemon, connect, monkeypatch):
    daemon = start_daemon()
    client = connect(daemon.bound_endpoint)
    ready(client)

    def broken(policy, model):
        raise ValueError("a bug in the model policy")

    monkeypatch.setattr(type(daemon._policy), "check", broken)
    job_id = submit(client)
    error = final(pump([client], all_final(job_id)), job_id)
    assert error["code"] == "internal_error" and error["job_id"] == job_id
    monkeypatch.undo()
    assert final(pump([client], all_final(second := submit(client))), second)["type"] == "result"


def test_client_text_is_logged_with_its_control_characters_escaped(start_daemon, connect, tmp_path, capfd):
    import logging

    from dragedit.daemon.logs import setup_logging

    logger = logging.getLogger("dragedit")
    before = list(logger.handlers)
    setup_logging(tmp_path / "daemon.log")  # the daemon's own file and stderr handlers
    try:
        daemon = start_daemon()
        ready(connect(daemon.bound_endpoint, client="evil\n2026-01-01 INFO forged line\x1b[31m"))
    finally:
        for handler in [h for h in logger.handlers if h not in before]:
            logger.removeHandler(handler)
            handler.close()
    for text in ((tmp_path / "daemon.log").read_text(), capfd.readouterr().err):
        lines = [line for line in text.splitlines() if "evil" in line or "forged" in line]
        assert len(lines) == 1 and "evil\\n2026-01-01 INFO forged line\\x1b[31m" in lines[0] and "\x1b" not in text
