"""The fuzz bench's generator and driver, run small against an in-process daemon: every broken
message is answered (almost always with an error), nothing else breaks, the daemon keeps serving."""
from __future__ import annotations

from daemon_support import all_final, final, pump, ready, submit
from dragedit.bench.fuzz import KINDS, Fuzzer, deep_nesting, nasty_messages, object_bomb, run_fuzz
from dragedit_protocol import messages


def test_a_fuzz_run_is_answered_message_by_message_and_the_daemon_lives(start_daemon, connect):
    daemon = start_daemon()
    report = run_fuzz(daemon.bound_endpoint, 3000, seed=7, method="double", data_folder=daemon.options.paths.root)
    assert report["messages"] == 3000 and set(report["sent"]) == set(KINDS)
    assert report["unanswered"] == 0 and report["unreadable_replies"] == 0 and report["daemon_crashes"] == 0
    assert report["error_replies"] > 0.8 * report["messages"]
    client = connect(daemon.bound_endpoint)
    ready(client)
    job_id = submit(client)
    assert final(pump([client], all_final(job_id)), job_id)["type"] == "result"


def test_every_nasty_message_is_refused_by_the_decoder():
    for nasty in nasty_messages("double"):
        frames = nasty if isinstance(nasty, list) else [nasty if isinstance(nasty, bytes) else messages.encode(nasty)]
        if len(frames) != 1:
            continue  # extra frames are refused by the daemon before decoding (see the fuzz run above)
        try:
            decoded = messages.decode_client(frames[0])
        except messages.ProtocolError:
            continue
        # the few that decode are refused later by the daemon: unknown job or method, or a bad parameter
        assert decoded["type"] in ("fetch", "cancel", "submit"), decoded


def test_the_fuzzer_is_reproducible():
    first, second = Fuzzer(5, "m"), Fuzzer(5, "m")
    assert [first.next() for _ in range(200)] == [second.next() for _ in range(200)]


def test_an_object_bomb_costs_neither_memory_nor_time():
    """A ping with 16 MB of nested empty arrays (one byte per Python list) used to cost +1.1 GB; a
    submit with a bomb in a field is stopped by the object budget after MAX_OBJECTS objects."""
    import tracemalloc

    import pytest

    bomb = object_bomb(16 * 2**20)
    submit_bomb = b"\x82" + messages.encode({"type": "submit"})[1:-3] + b"\xa6points" + bomb[bomb.index(b"\xdd"):]
    tracemalloc.start()
    try:
        for data, code, says in ((bomb, "too_large", "only submit"), (submit_bomb, "bad_message", "objects")):
            with pytest.raises(messages.ProtocolError) as err:
                messages.decode_client(data)
            assert err.value.code == code and says in err.value.message, err.value.message
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, peak


def test_deep_nesting_is_a_bad_message_not_a_recursion_error(start_daemon, connect, caplog):
    import logging

    deep_type = b"\x82\xa1v\x01\xa4type" + b"\x91" * 1000 + b"\xc0"
    for data in (deep_nesting(1000), deep_type):
        try:
            messages.decode_client(data)
        except messages.ProtocolError as err:
            assert err.code == "bad_message" and "nested" in err.message
        else:
            raise AssertionError("a message nested 1000 deep was accepted")
    daemon = start_daemon()
    with caplog.at_level(logging.INFO, logger="dragedit"):
        report = run_fuzz(daemon.bound_endpoint, 0, seed=1, method="double", data_folder=daemon.options.paths.root,
                          cost_sizes_mb=(1,))
    assert [row["reply"] for row in report["message_costs"]][:2] == ["bad_message", "too_large"]
    assert "Traceback" not in caplog.text and "failed to handle" not in caplog.text
