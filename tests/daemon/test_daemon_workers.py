"""One worker per device (here two CPU workers, with the engine double): two clients' jobs run at the
same time, a job goes to the worker whose caches hold its image, cancel and fetch work on either."""
from __future__ import annotations

from daemon_support import all_final, final, image, pump, ready, submit
from dragedit import cli
from engine_double import EngineDouble

import pytest

LONG = {"steps": 40, "step_s": 0.02}


def start_two_workers(start_daemon):
    made: list[EngineDouble] = []

    def factory(settings):
        made.append(EngineDouble(settings))
        return made[-1]

    return start_daemon(factory, devices=("cpu", "cpu")), made


def test_two_clients_jobs_run_at_the_same_time_on_two_workers(start_daemon, connect):
    daemon, engines = start_two_workers(start_daemon)
    first, second = connect(daemon.bound_endpoint), connect(daemon.bound_endpoint)
    ready(first), ready(second)
    job_a = submit(first, image(16, 12), params=LONG)
    job_b = submit(second, image(20, 12), params=LONG)
    seen = pump([first, second], all_final(job_a, job_b))
    first_result = next(i for i, m in enumerate(seen) if m["type"] == "result")
    progress_before = {m["job_id"] for m in seen[:first_result] if m["type"] == "progress"}
    assert progress_before == {job_a, job_b}  # both ran before either finished, not one after the other
    assert sorted(len(engine.ran) for engine in engines) == [1, 1]
    assert {engine.settings.device for engine in engines} == {"cpu"}


def test_a_job_goes_to_the_worker_that_holds_its_images_caches(start_daemon, connect):
    daemon, engines = start_two_workers(start_daemon)
    client = connect(daemon.bound_endpoint)
    ready(client)
    picture_x, picture_y = image(16, 12), image(24, 12)
    jobs = [submit(client, picture_x, params=LONG), submit(client, picture_y, params=LONG)]
    pump([client], all_final(*jobs))
    holder = next(engine for engine in engines if engine.ran[0].image.shape == picture_y.shape)
    again = submit(client, picture_y)  # both workers are free: the one that ran this image gets it
    assert final(pump([client], all_final(again)), again)["type"] == "result"
    assert len(holder.ran) == 2 and sum(len(engine.ran) for engine in engines) == 3


def test_cancel_and_fetch_reach_the_job_on_either_worker(start_daemon, connect):
    daemon, _ = start_two_workers(start_daemon)
    client = connect(daemon.bound_endpoint)
    ready(client)
    kept = submit(client, params=LONG)
    stopped = submit(client, image(20, 12), params=LONG)
    pump([client], lambda seen: sum(m["type"] == "queued" and m["position"] == 0 for m in seen) == 2)
    client.cancel(stopped)
    client.fetch(kept)
    seen = pump([client], all_final(kept, stopped))
    assert final(seen, stopped)["type"] == "cancelled" and final(seen, kept)["type"] == "result"
    client.request_status()
    status = next(m for m in pump([client], lambda seen: any(m["type"] == "status" for m in seen))
                  if m["type"] == "status")
    assert [worker["device"] for worker in status["workers"]] == ["cpu", "cpu"]


def test_serve_devices_are_parsed_with_a_clear_error():
    assert cli.serve_devices("cuda:0, cuda:1", "auto") == ("cuda:0", "cuda:1")
    assert cli.serve_devices("cpu,cpu", "auto") == ("cpu", "cpu")
    assert cli.serve_devices(None, "cpu") == ()
    with pytest.raises(cli.UsageError, match="'gpu0' is not cpu, cuda or cuda:N"):
        cli.serve_devices("gpu0", "auto")
