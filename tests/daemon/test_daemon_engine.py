"""The daemon end to end with the real Engine and a tiny random diffusers model loaded from disk,
over real loopback sockets: welcome, progress and result, two clients, cancel, bad input, OOM."""
from __future__ import annotations

import numpy as np
import pytest

from daemon_support import FAST, SLOW, all_final, engine_daemon_in_thread, final, photo, pump, ready, submit
from dragedit.cli import create_engine
from dragedit.engine.api import EngineSettings
from dragedit_protocol.client import DaemonClient

class FaultyEngine:
    """The real engine with an out-of-memory error injected into one job's run."""

    created: list["FaultyEngine"] = []

    def __init__(self, settings: EngineSettings):
        self.engine = create_engine(settings)
        self.released = 0
        FaultyEngine.created.append(self)

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def release_memory(self) -> None:
        self.released += 1
        self.engine.release_memory()

    def run(self, request, on_progress, is_cancelled):
        if request.prompt == "inject oom":
            import torch

            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return self.engine.run(request, on_progress, is_cancelled)


@pytest.fixture(scope="module")
def engine_daemon(tiny_model_dir, tmp_path_factory):
    """One daemon with the real engine for the whole module (loading the model is the slow part)."""
    with engine_daemon_in_thread(tiny_model_dir, tmp_path_factory.mktemp("engine-home"), FaultyEngine) as daemon:
        yield daemon


def engine_client(engine_daemon, connect) -> DaemonClient:
    """A client of the module's daemon, with the keys of its data folder."""
    return connect(engine_daemon.bound_endpoint, timeout_s=30.0, data_folder=engine_daemon.options.paths.root)


@pytest.fixture
def client(engine_daemon, connect) -> DaemonClient:
    made = engine_client(engine_daemon, connect)
    ready(made, timeout_s=120)
    return made


def test_welcome_publishes_the_real_methods_and_their_schemas(client, tiny_model_dir):
    welcome = client.welcome
    assert welcome["state"] == "ready" and welcome["device"] == "cpu" and welcome["model"] == str(tiny_model_dir)
    methods = {m["name"]: m for m in welcome["methods"]}
    assert "dragdiffusion" in methods
    params = {p["name"]: p for p in methods["dragdiffusion"]["params"]}
    assert params["drag_steps"]["default"] == 80 and params["drag_steps"]["type"] == "int"
    assert params["inversion_strength"]["default"] == 0.7


def test_submit_gets_queued_progress_and_a_full_size_result(client):
    rgba = photo(40, 28)
    job_id = submit(client, rgba, method="dragdiffusion", params=FAST, seed=5, points=[(10, 10, 16, 12)])
    seen = pump([client], all_final(job_id), timeout_s=300)
    result = final(seen, job_id)
    assert result["type"] == "result", result
    assert (result["image"]["width"], result["image"]["height"]) == (40, 28)
    assert len(result["image"]["data"]) == 40 * 28 * 4 and result["seed"] == 5
    assert len(result["handles"]) == 1 and "drag" in " ".join(result["timings"])
    kinds = [m["type"] for m in seen if m.get("job_id") == job_id]
    assert kinds[0] == "queued" and kinds[-1] == "result"
    phases = {m["phase"] for m in seen if m["type"] == "progress"}
    assert {"inversion", "drag", "denoise"} <= phases


def test_a_drag_of_a_prepared_image_finds_its_lora_and_inversion_cached(client):
    rgba = photo(40, 28, seed=3)
    mask = np.zeros((28, 40), np.uint8)
    mask[6:20, 8:30] = 255
    params = {**FAST, "lora_steps": 2}
    prepare_id = client.prepare(rgba.tobytes(), 40, 28, mask.tobytes(), "dragdiffusion", params)
    seen = pump([client], lambda seen: any(m.get("prepare_id") == prepare_id and m["state"] == "ready" for m in seen),
                timeout_s=300)
    assert seen[-1]["cached"] == {"lora": False, "inversion": False} and seen[-1]["step"] == seen[-1]["total"] > 2
    job_id = submit(client, rgba, method="dragdiffusion", params=params, mask=mask.tobytes(), points=[(12, 10, 18, 12)])
    result = final(pump([client], all_final(job_id), timeout_s=300), job_id)
    assert result["type"] == "result" and result["cache_hits"] == {"lora": True, "inversion": True}


def test_two_clients_at_once_each_get_their_own_result(engine_daemon, connect):
    first, second = (engine_client(engine_daemon, connect) for _ in range(2))
    ready(first, 120), ready(second, 120)
    job_a = submit(first, photo(32, 32, seed=1), method="dragdiffusion", params=FAST, points=[(5, 5, 9, 5)])
    job_b = submit(second, photo(48, 24, seed=2), method="dragdiffusion", params=FAST, points=[(20, 10, 20, 16)])
    seen = pump([first, second], all_final(job_a, job_b), timeout_s=300)
    a, b = final(seen, job_a), final(seen, job_b)
    assert a["type"] == b["type"] == "result"
    assert a["_client"] == 0 and b["_client"] == 1
    assert (a["image"]["width"], b["image"]["width"]) == (32, 48)


def test_cancel_of_a_running_and_of_a_queued_job(client):
    running = submit(client, photo(), method="dragdiffusion", params=SLOW)
    waiting = submit(client, photo(), method="dragdiffusion", params=FAST)
    pump([client], lambda seen: any(m["type"] == "progress" and m["phase"] == "lora" for m in seen), timeout_s=300)
    client.cancel(waiting)
    client.cancel(running)
    seen = pump([client], all_final(running, waiting), timeout_s=120)
    assert final(seen, running)["type"] == "cancelled" and final(seen, waiting)["type"] == "cancelled"


def test_a_bad_submit_gets_an_error_while_another_clients_job_completes(engine_daemon, connect):
    good, bad = (engine_client(engine_daemon, connect) for _ in range(2))
    ready(good, 120), ready(bad, 120)
    job_id = submit(good, photo(), method="dragdiffusion", params=FAST)
    wrong_param = submit(bad, photo(), method="dragdiffusion", params={"drag_steps": -3})
    wrong_method = submit(bad, photo(), method="dragfusion")
    outside = submit(bad, photo(), method="dragdiffusion", points=[(5, 5, 40, 5)])
    seen = pump([good, bad], all_final(job_id, wrong_param, wrong_method, outside), timeout_s=300)
    assert final(seen, job_id)["type"] == "result"
    assert final(seen, wrong_param)["code"] == "bad_param"
    assert final(seen, wrong_method)["code"] == "unknown_method"
    assert final(seen, outside)["code"] == "point_outside"  # refused by the client before sending


def test_out_of_memory_ends_the_job_with_a_hint_frees_memory_and_the_next_job_runs(client):
    failing = submit(client, photo(), method="dragdiffusion", params=FAST, prompt="inject oom")
    after = submit(client, photo(), method="dragdiffusion", params=FAST)
    seen = pump([client], all_final(failing, after), timeout_s=300)
    error = final(seen, failing)
    assert error["code"] == "out_of_memory" and "out of memory" in error["message"]
    assert "smaller region" in error["hint"] and "fp16" in error["hint"]
    assert final(seen, after)["type"] == "result"
    assert FaultyEngine.created[-1].released == 1  # the caches were dropped after the failure


def test_a_job_whose_tracking_exceeds_the_free_memory_is_refused(client, monkeypatch):
    """StableDrag with r2 = 32 and 64 points builds 64 Gram matrices of 4225 x 4225 (about 10 GB in all);
    the device here is made to have 1 GB free, so the job is refused before any work, with a sentence."""
    from dragedit.engine import work_budget
    from dragedit.methods import stabledrag

    assert work_budget.estimated_bytes(stabledrag, {"r2": 32}, 64, 640) > 9 * 2**30
    monkeypatch.setattr(work_budget, "available_bytes", lambda device: 2**30)
    rgba = photo(63, 65)
    points = [(1 + i % 8 * 7, 1 + i // 8 * 7, 6 + i % 8 * 7, 6 + i // 8 * 7) for i in range(64)]
    refused = submit(client, rgba, method="stabledrag", points=points, params={**FAST, "r2": 32})
    small = submit(client, rgba, method="stabledrag", points=points[:2], params={**FAST, "r2": 3})
    seen = pump([client], all_final(refused, small), timeout_s=300)
    error = final(seen, refused)
    assert error["code"] == "too_much_work" and "GB" in error["message"] and "r2" in error["hint"]
    assert final(seen, small)["type"] == "result"
