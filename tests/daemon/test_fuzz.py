"""The fuzz bench's generator and driver, run small against an in-process daemon: every broken
message is answered (almost always with an error), nothing else breaks, the daemon keeps serving."""
from __future__ import annotations

from daemon_support import all_final, final, pump, ready, submit
from dragedit.bench.fuzz import KINDS, Fuzzer, nasty_messages, run_fuzz
from dragedit_protocol import messages


def test_a_fuzz_run_is_answered_message_by_message_and_the_daemon_lives(start_daemon, connect):
    daemon = start_daemon()
    report = run_fuzz(daemon.bound_endpoint, 3000, seed=7, method="double")
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
