"""The dragedit command: help for every command, argument checks, edit end to end (through a
daemon and --local) with the real engine and a tiny model, status, keys, bench dispatch."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dragedit import cli
from dragedit.config import Paths
from dragedit.daemon import Daemon, DaemonOptions
from dragedit.engine.api import EngineSettings

FAST_PARAMS = ["--param", "lora_steps=0", "--param", "drag_steps=1", "--param", "inversion_strength=0.02"]


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dragedit", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.mark.parametrize("command", [[], ["serve"], ["edit"], ["prepare"], ["status"], ["keys"], ["keys", "new-client"], ["bench"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dragedit") and "--help" in out


def test_help_is_fast_because_torch_is_not_imported():
    probe = subprocess.run([sys.executable, "-c", "import sys; from dragedit import cli; cli.build_parser(); "
                            "print('torch' in sys.modules, 'diffusers' in sys.modules)"],
                           capture_output=True, text=True, timeout=120)
    assert probe.stdout.split() == ["False", "False"]


def test_points_and_params_are_parsed_with_clear_errors():
    assert cli.parse_points(["10,20:30,25.5"]) == [(10.0, 20.0, 30.0, 25.5)]
    assert cli.parse_params(["a=3", "b=0.5", "c=true", "d=l1", "e=False"]) == {"a": 3, "b": 0.5, "c": True, "d": "l1",
                                                                               "e": False}
    with pytest.raises(cli.UsageError, match="X1,Y1:X2,Y2"):
        cli.parse_points(["10,20-30,25"])
    with pytest.raises(cli.UsageError, match="NAME=VALUE"):
        cli.parse_params(["steps"])


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "in.png"
    rgba = np.random.default_rng(1).integers(0, 256, (24, 40, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(path)
    return path


@pytest.mark.parametrize("extra, message", [
    (["--points", "5,5:60,5"], "outside the 40x24 image"),
    (["--points", "5,5:5,5"], "target on its handle"),
    (["--points", "5,5:9,5", "--mask", "missing.png"], "cannot read the image"),
    (["--points", "5,5:9,5", "--out", "x.jpg"], "must be a .png"),
])
def test_edit_refuses_bad_input_before_contacting_anyone(picture, tmp_path, extra, message, capsys):
    args = ["edit", str(picture), "--method", "dragdiffusion", "--out", str(tmp_path / "o.png"), *extra]
    assert cli.main(args) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_edit_without_a_mask_sends_the_default_region_around_the_points(picture, tmp_path, capsys):
    from dragedit_protocol.regions import region_around_points

    args = cli.build_parser().parse_args(["edit", str(picture), "--points", "8,8:14,10", "--method", "draglora",
                                          "--out", str(tmp_path / "o.png")])
    submit = cli.load_inputs(args)
    assert submit["mask"]["data"] == region_around_points([(8, 8, 14, 10)], 40, 24)
    assert "no --mask: editing the box x 1..20, y 1..16" in capsys.readouterr().err


def test_status_without_a_daemon_says_how_to_start_one(capsys):
    assert cli.main(["status", "--endpoint", "tcp://127.0.0.1:9", "--timeout", "0.5"]) == cli.EXIT_NO_DAEMON
    assert "dragedit serve" in capsys.readouterr().err


@pytest.fixture(scope="module")
def daemon(tiny_model_dir, tmp_path_factory):
    """A daemon in this process; the CLI reaches it as its user does, with the keys in its data folder."""
    paths = Paths(tmp_path_factory.mktemp("cli-home")).make()
    patch = pytest.MonkeyPatch()
    patch.setenv("DRAGEDIT_HOME", str(paths.root))
    settings = EngineSettings(model=str(tiny_model_dir), device="cpu", dtype="fp32", work_size=64,
                              cache_dir=str(paths.cache))
    running = Daemon(DaemonOptions(endpoint="tcp://127.0.0.1:*", settings=settings, paths=paths), cli.create_engine)
    thread = running.start_in_thread()
    yield running
    running.stop()
    thread.join(timeout=60)
    patch.undo()


def test_edit_through_the_daemon_writes_the_result(daemon, picture, tmp_path):
    out = tmp_path / "out.png"
    run = run_cli("edit", str(picture), "--points", "8,8:14,10", "--method", "dragdiffusion", *FAST_PARAMS,
                  "--seed", "3", "--out", str(out), "--endpoint", daemon.bound_endpoint)
    assert run.returncode == 0, run.stderr
    with Image.open(out) as result:
        assert result.size == (40, 24) and result.mode == "RGBA"
    assert "queued" in run.stderr or "running" in run.stderr
    assert "drag" in run.stderr and f"wrote {out}" in run.stderr and "seed 3" in run.stderr


def test_prepare_then_edit_shows_the_phases_that_came_from_the_cache(daemon, picture, tmp_path):
    mask = tmp_path / "mask.png"
    selection = np.zeros((24, 40), np.uint8)
    selection[4:20, 4:30] = 255
    Image.fromarray(selection).save(mask)
    params = ["--param", "lora_steps=2", "--param", "drag_steps=1", "--param", "inversion_strength=0.02"]
    prepared = run_cli("prepare", str(picture), "--mask", str(mask), "--method", "dragdiffusion", *params, "--wait",
                       "--endpoint", daemon.bound_endpoint)
    assert prepared.returncode == 0, prepared.stderr
    assert "preparing" in prepared.stderr and prepared.stderr.strip().endswith("ready")
    again = run_cli("prepare", str(picture), "--mask", str(mask), "--method", "dragdiffusion", *params,
                    "--endpoint", daemon.bound_endpoint)
    assert again.returncode == 0 and "ready (already cached: lora, inversion)" in again.stderr, again.stderr
    edited = run_cli("edit", str(picture), "--mask", str(mask), "--points", "8,8:14,10", "--method", "dragdiffusion",
                     *params, "--out", str(tmp_path / "e.png"), "--endpoint", daemon.bound_endpoint)
    assert edited.returncode == 0, edited.stderr
    assert "lora 0.0 s (cached), inversion 0.0 s (cached), drag" in edited.stderr


def test_prepare_refuses_bad_input_with_what_to_do(daemon, picture, tmp_path):
    run = run_cli("prepare", str(picture), "--param", "lora_steps=2", "--endpoint", daemon.bound_endpoint)
    assert run.returncode == cli.EXIT_USAGE and "--param needs --method" in run.stderr
    run = run_cli("prepare", str(picture), "--method", "nope", "--endpoint", daemon.bound_endpoint)
    assert run.returncode == cli.EXIT_FAILED and "[unknown_method]" in run.stderr and "hint: choose one of" in run.stderr


def test_edit_reports_the_daemons_error_with_its_hint(daemon, picture, tmp_path):
    run = run_cli("edit", str(picture), "--points", "8,8:14,10", "--method", "dragdiffusion", "--param", "colour=red",
                  "--out", str(tmp_path / "o.png"), "--endpoint", daemon.bound_endpoint)
    assert run.returncode == cli.EXIT_FAILED
    assert "colour" in run.stderr and "[bad_param]" in run.stderr and "hint: known parameters" in run.stderr


def test_status_shows_the_daemon(daemon, capsys):
    assert cli.main(["status", "--endpoint", daemon.bound_endpoint, "--timeout", "30"]) == 0
    out = capsys.readouterr().out
    assert f"at {daemon.bound_endpoint}" in out and "engine   ready" in out and "device   cpu" in out
    assert "prepare  0 waiting" in out
    assert cli.main(["status", "--endpoint", daemon.bound_endpoint, "--timeout", "30", "--json"]) == 0
    assert '"queued": 0' in capsys.readouterr().out


def test_status_shows_a_download_in_progress():
    status = {"daemon_version": "0.1.0", "pid": 7, "endpoint": "tcp://127.0.0.1:1", "uptime_s": 9.0,
              "state": "loading model", "error": None, "model": "org/model", "queued": 0, "clients": 1,
              "results_stored": 0, "data_folder": "/d",
              "loading": {"bytes_done": 1_200_000_000, "bytes_total": 4_300_000_000, "eta_s": 610.0,
                          "file": "unet/diffusion_pytorch_model.safetensors"}}
    assert ("engine   loading model: downloading, 1.2 of 4.3 GB, about 10 min left "
            "(unet/diffusion_pytorch_model.safetensors)") in cli.format_status(status).splitlines()


def test_status_shows_each_worker_and_another_clients_job():
    status = {"daemon_version": "0.1.0", "pid": 7, "endpoint": "tcp://127.0.0.1:1", "uptime_s": 9.0,
              "state": "ready", "error": None, "model": "m", "queued": 2, "clients": 3, "results_stored": 0,
              "data_folder": "/d", "running": {"job_id": None, "method": "gooddrag", "running_s": 3.0},
              "workers": [{"device": "cuda:0", "state": "ready", "running": {"job_id": None, "method": "gooddrag"}},
                          {"device": "cuda:1", "state": "ready", "running": {"prepare": True, "method": None}},
                          {"device": "cuda:2", "state": "ready", "running": None}]}
    lines = cli.format_status(status).splitlines()
    assert "workers  cuda:0 running gooddrag, cuda:1 preparing (every method), cuda:2 idle" in lines
    assert "queue    running a job of another client (gooddrag), 2 waiting, 3 client(s)" in lines


def test_edit_local_runs_the_engine_in_process(tiny_model_dir, picture, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DRAGEDIT_HOME", str(tmp_path / "home"))
    out = tmp_path / "local.png"
    code = cli.main(["edit", str(picture), "--points", "8,8:14,10", "--method", "dragdiffusion", *FAST_PARAMS,
                     "--out", str(out), "--local", "--model", str(tiny_model_dir), "--device", "cpu",
                     "--work-size", "64"])
    assert code == 0, capsys.readouterr().err
    with Image.open(out) as result:
        assert result.size == (40, 24)


def test_keys_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DRAGEDIT_HOME", str(tmp_path / "home"))
    assert cli.main(["keys", "server"]) == 0
    server_line = capsys.readouterr().out.splitlines()[0]
    assert server_line.startswith("server public key: ") and len(server_line.split(": ")[1]) == 40
    key_file = tmp_path / "studio-1.key_secret"
    assert cli.main(["keys", "new-client", "studio-1", "--out", str(key_file)]) == 0
    out = capsys.readouterr().out
    assert server_line in out and "client secret key" in out and key_file.stat().st_mode & 0o077 == 0
    assert cli.main(["keys", "list"]) == 0
    assert capsys.readouterr().out.startswith("studio-1  ")
    assert cli.main(["keys", "revoke", "studio-1"]) == 0
    assert cli.main(["keys", "revoke", "studio-1"]) == cli.EXIT_USAGE
    assert "no authorised client" in capsys.readouterr().err


def test_serve_refuses_to_start_without_keys_where_they_are_needed(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DRAGEDIT_HOME", str(tmp_path / "home"))
    assert cli.main(["serve", "--endpoint", "tcp://0.0.0.0:48999"]) == cli.EXIT_FAILED
    assert "dragedit keys server" in capsys.readouterr().err


def test_bench_and_demo_dispatch(capsys, monkeypatch):
    with pytest.raises(SystemExit):
        cli.main(["bench", "nonsense"])
    assert "invalid choice" in capsys.readouterr().err
    seen = {}

    class Module:
        @staticmethod
        def main(argv):
            seen["argv"] = argv
            return 4

    def fake_import(name):
        seen["name"] = name
        return Module

    monkeypatch.setattr(cli.importlib, "import_module", fake_import)
    assert cli.main(["bench", "load", "--clients", "2", "--help"]) == 4
    assert seen == {"name": "dragedit.bench.load", "argv": ["--clients", "2", "--help"]}
