"""The queue policy: arrival order within a client, turns between clients, no starvation."""
from __future__ import annotations

from dragedit.daemon.jobs import FairQueue, Job, job_key


def job(job_id: str, lane: str) -> Job:
    return Job(job_id, peer=lane.encode(), owner="", lane=lane, request={})


def key(job_id: str) -> str:
    """The queue knows jobs by key: the owner's key ("" here) and the job id."""
    return job_key("", job_id)


def run_all(queue: FairQueue) -> list[str]:
    order = []
    while (next_job := queue.pop_next()) is not None:
        order.append(next_job.job_id)
    return order


def test_one_client_runs_in_arrival_order():
    queue = FairQueue()
    for i in range(5):
        queue.add(job(f"a{i}", "a"))
    assert run_all(queue) == ["a0", "a1", "a2", "a3", "a4"]


def test_a_flood_does_not_starve_a_later_client():
    queue = FairQueue()
    for i in range(20):
        queue.add(job(f"a{i}", "a"))
    queue.add(job("b0", "b"))
    queue.add(job("b1", "b"))
    order = run_all(queue)
    assert order.index("b0") <= 1 and order.index("b1") <= 3
    assert [j for j in order if j.startswith("a")] == [f"a{i}" for i in range(20)]


def test_a_client_arriving_while_a_flood_runs_waits_for_at_most_one_job_of_it():
    queue = FairQueue()
    for i in range(10):
        queue.add(job(f"a{i}", "a"))
    assert queue.pop_next().job_id == "a0"  # a0 runs
    queue.add(job("b0", "b"))
    assert queue.positions()[key("b0")] <= 2
    assert run_all(queue)[:2] in (["b0", "a1"], ["a1", "b0"])


def test_three_clients_take_turns():
    queue = FairQueue()
    for lane in "abc":
        for i in range(3):
            queue.add(job(f"{lane}{i}", lane))
    assert run_all(queue) == ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]


def test_positions_count_from_one_and_removal_moves_others_up():
    queue = FairQueue()
    for i in range(3):
        queue.add(job(f"a{i}", "a"))
    assert queue.positions() == {key("a0"): 1, key("a1"): 2, key("a2"): 3}
    assert queue.remove(key("a0")).job_id == "a0"
    assert queue.positions() == {key("a1"): 1, key("a2"): 2}
    assert queue.count("a") == 2 and key("a1") in queue and key("a0") not in queue


def test_an_idle_client_gets_no_credit_for_the_time_it_was_away():
    queue = FairQueue()
    queue.add(job("b0", "b"))
    assert run_all(queue) == ["b0"]
    for i in range(4):
        queue.add(job(f"a{i}", "a"))
    queue.pop_next()  # a0
    queue.pop_next()  # a1
    for i in range(3):
        queue.add(job(f"b{i + 1}", "b"))
    # b comes back: it shares turns from now on, it does not jump ahead of all of a's jobs
    assert run_all(queue) == ["a2", "b1", "a3", "b2", "b3"]
