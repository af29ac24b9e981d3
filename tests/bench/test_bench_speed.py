"""`dragedit bench speed` on the tiny model with few steps: its table, its JSON, and a repeated drag served from the caches."""
from __future__ import annotations

import json

import pytest

from dragedit import cli
from dragedit.bench import speed

FEW_STEPS = ["--param", "lora_steps=2", "--param", "lora_batch=1", "--param", "inversion_strength=0.1",
             "--param", "dragdiffusion.drag_steps=2", "--param", "gooddrag.operations=2",
             "--param", "gooddrag.operations_per_step=1", "--param", "gooddrag.gradient_steps=1"]
INVERSION_STEPS, LORA_STEPS = 5, 2  # what FEW_STEPS gives


@pytest.fixture(scope="module")
def bench_run(tiny_model_dir, tmp_path_factory):
    """One bench run of two methods (a first, one repeated and a prepared first drag each): (exit status, JSON
    report, table)."""
    out = tmp_path_factory.mktemp("bench") / "speed.json"
    status = speed.main(["--model", str(tiny_model_dir), "--method", "dragdiffusion,gooddrag", "--size", "64",
                         "--repeat", "1", "--pass-repeat", "2", "--prepared", "--json", str(out), *FEW_STEPS])
    report = json.loads(out.read_text()) if out.exists() else None
    return status, report, speed.format_report(report) if report else ""


def test_bench_reports_every_phase_of_a_first_and_a_repeated_drag(bench_run):
    status, report, table = bench_run
    assert status == 0 and report is not None
    env = report["environment"]
    assert (env["device"], env["dtype"], env["size"], env["threads"]) == ("cpu", "float32", 64, 1)
    assert list(report["methods"]) == ["dragdiffusion", "gooddrag"]
    for method, summary in report["methods"].items():
        assert [run["run"] for run in summary["runs"]] == ["first", "repeat 1"]
        for run in summary["runs"]:
            assert list(run["phases"]) == ["load", "lora", "inversion", "drag", "denoise", "other"]
            assert all(seconds >= 0 for seconds in run["phases"].values())
            assert run["total"] >= sum(run["phases"].values()) - 1e-6 and run["edit"] <= run["total"]
            assert run["cpu_time"] > 0 and run["memory"]["cpu_rss_peak_bytes"] > 2**20
            assert set(run["counts"]) == {"unet_forward", "unet_feature_forward", "unet_backward"}
        first, repeat = summary["runs"]
        assert first["phases"]["load"] > 0 and repeat["phases"]["load"] < first["phases"]["load"]
        assert summary["repeat_speedup"] == pytest.approx(first["edit"] / repeat["edit"])
        assert summary["repeat_speedup_cpu"] == pytest.approx(first["cpu_time"] / repeat["cpu_time"])
        # The table shows every run of every method, the prepared one too.
        assert sum(line.startswith(method) for line in table.splitlines()) == 3


def test_repeated_drag_is_served_from_the_caches(bench_run):
    _, report, _ = bench_run
    for method, summary in report["methods"].items():
        first, repeat = summary["runs"]
        assert first["cache_hits"] == {"lora": False, "inversion": False, "derived": False, "reference": False}
        assert repeat["cache_hits"]["lora"] and repeat["cache_hits"]["inversion"] and repeat["cache_hits"]["reference"]
        # No RecLoRA training and no inversion: exactly those passes are gone.
        assert first["counts"]["unet_backward"] - repeat["counts"]["unet_backward"] == LORA_STEPS
        assert first["counts"]["unet_forward"] - repeat["counts"]["unet_forward"] >= LORA_STEPS + INVERSION_STEPS
    gooddrag_repeat = report["methods"]["gooddrag"]["runs"][1]
    assert gooddrag_repeat["cache_hits"]["derived"]  # the original trajectory's features and steps


def test_a_prepared_first_drag_is_served_from_the_caches_the_prepare_made(bench_run):
    _, report, table = bench_run
    for method, summary in report["methods"].items():
        prepared, repeat = summary["prepared"], summary["runs"][1]
        assert prepared["prepare_s"] > 0 and prepared["run"]["run"] == "prepared"
        assert prepared["run"]["cache_hits"]["lora"] and prepared["run"]["cache_hits"]["inversion"]
        assert prepared["run"]["counts"]["unet_backward"] == repeat["counts"]["unet_backward"]
        assert summary["prepared_vs_repeat"] == pytest.approx(prepared["run"]["edit"] / repeat["edit"])
    assert "prepared first drag" in table and "x the time of a repeat" in table


def test_bench_times_a_full_and_a_feature_only_pass(bench_run):
    _, report, table = bench_run
    passes = report["passes"]
    assert passes["latent_size"] == 16
    for kind in ("forward", "forward_backward"):
        full, only = passes[kind]["full"]["median_s"], passes[kind]["feature_only"]["median_s"]
        assert full > 0 and only > 0
        assert passes[kind]["saving"] == pytest.approx(1 - only / full)
        cpu_full, cpu_only = passes[kind]["full"]["cpu_median_s"], passes[kind]["feature_only"]["cpu_median_s"]
        assert passes[kind]["cpu_saving"] == pytest.approx(1 - cpu_only / cpu_full)
    assert "feature-only" in table and "forward + backward" in table


@pytest.mark.parametrize("argv,message", [
    (["--method", "nope"], "choose 'all' or from: dragdiffusion"),
    (["--method", "dragdiffusion", "--param", "drag_stepz=3"], "no benchmarked method has a parameter 'drag_stepz'"),
    (["--method", "dragdiffusion", "--param", "drag_steps=-1"], "outside"),
    (["--method", "dragdiffusion", "--param", "gooddrag.operations=2"], "not benchmarked"),
    (["--param", "lora_steps"], "is not NAME=VALUE"),
    (["--size", "60"], "multiple of 8"),
    (["--passes-only", "--pass-repeat", "0"], "needs --pass-repeat 1 or more"),
    (["--prepared", "--no-mask"], "--prepared needs the selection"),
    (["--model", "/no/such/model"], "neither tiny, sd15-random, toy nor an existing folder"),
])
def test_bad_options_say_what_to_write(argv, message, capsys):
    assert speed.main(argv) == speed.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_tiny_model_is_built_once(tmp_path):
    folder = speed.resolve_model("tiny", tmp_path)
    stamp = (tmp_path / "tiny" / "model_index.json").stat().st_mtime_ns
    assert speed.resolve_model("tiny", tmp_path) == folder
    assert (tmp_path / "tiny" / "model_index.json").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]  # no staging folder left behind


def test_cli_dispatches_to_the_speed_bench(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["bench", "speed", "--help"])
    assert done.value.code == 0
    assert "--repeat" in capsys.readouterr().out


@pytest.mark.skipif(not speed.PeakMemory.CLEAR_REFS.exists(), reason="the per-run CPU peak needs Linux /proc")
def test_cpu_peak_memory_is_measured_per_run():
    import numpy as np
    import torch

    memory = speed.PeakMemory(torch.device("cpu"))
    memory.reset()
    big = np.ones(400 * 2**20 // 8)  # 400 MiB, touched
    with_big = memory.read()["cpu_rss_peak_bytes"]
    del big
    memory.reset()
    assert with_big - memory.read()["cpu_rss_peak_bytes"] > 300 * 2**20


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_asking_for_a_gpu_without_one_says_so(tiny_model_dir, capsys):
    status = speed.main(["--model", str(tiny_model_dir), "--device", "cuda", "--method", "dragdiffusion"])
    assert status == speed.EXIT_FAILED
    assert "no CUDA GPU is available" in capsys.readouterr().err
