"""The daemon connection, daemon start-up and one job, driven by tick() as an editor would."""
import json
import os
import stat
import sys

import pytest

from dragedit_protocol.editor.drag import DragRequest, plan_drag
from dragedit_protocol.editor.errors import UserError
from dragedit_protocol.editor.geometry import PointPair, Rect
from dragedit_protocol.editor.launcher import DaemonLauncher, InstallInfo, is_local_endpoint, read_install_info
from dragedit_protocol.editor.session import DragSession

from fake_client import FakeClient

ENDPOINT = "tcp://127.0.0.1:48999"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class RecordingLauncher:
    def __init__(self, error=None):
        self.starts = 0
        self.error = error
        self.code = None
        self.log_path = "/tmp/serve.log"

    def start(self):
        if self.error:
            raise self.error
        self.starts += 1

    def exited_with(self):
        return self.code

    def log_tail(self):
        return "ImportError: no module named torch"


def make_request(**fields):
    return DragRequest(plan_drag(bytes(4 * 8 * 6), Rect(0, 0, 8, 6), [PointPair((1.5, 1.5), (5.5, 4.5))]),
                       "dragdiffusion", **fields)


def session_with(state="ready", launcher=None, not_startable=""):
    clock = Clock()
    created = []

    def make(endpoint):
        created.append(FakeClient(endpoint, state if not created else "connecting"))
        return created[-1]

    return DragSession(ENDPOINT, make, launcher, not_startable=not_startable, clock=clock), created, clock


def test_a_ready_daemon_gets_the_plan_at_once_and_the_result_is_taken_once():
    session, clients, _ = session_with("ready")
    assert session.daemon_text == "Daemon ready: tiny-test-model on cpu."
    assert [m.name for m in session.methods] == ["dragdiffusion", "goodrag"]
    job = session.start_drag(make_request(params={"lr": 0.02}, prompt="cat"), seed=3, preview_every=5)
    sent = clients[0].submitted[0]
    assert sent["job_id"] == job.job_id and sent["method"] == "dragdiffusion" and sent["params"] == {"lr": 0.02}
    assert session.daemon_text == "Daemon busy with this drag: tiny-test-model on cpu."
    assert (sent["width"], sent["height"], sent["points"], sent["seed"], sent["preview_every"]) == (8, 6, [(1.0, 1.0, 5.0, 4.0)], 3, 5)
    assert job.status == "submitted"
    with pytest.raises(UserError, match="already running"):
        session.start_drag(make_request())
    clients[0].inbox = [{"type": "queued", "job_id": job.job_id, "position": 1},
                        {"type": "progress", "job_id": job.job_id, "phase": "drag", "step": 1, "total": 4}]
    assert session.tick()
    assert job.status == "running" and session.take_finished() is None
    clients[0].inbox = [{"type": "result", "job_id": job.job_id, "image": {}, "handles": []}]
    session.tick()
    assert session.take_finished() is job and job.status == "done"
    assert session.take_finished() is None
    assert not session.busy and session.daemon_text.startswith("Daemon ready")


def test_no_answer_starts_the_daemon_then_sends_when_ready():
    launcher = RecordingLauncher()
    session, clients, clock = session_with("connecting", launcher)
    job = session.start_drag(make_request())
    assert job.status == "waiting" and session.job.status_text().startswith("Waiting for the daemon to start")
    session.tick()
    assert launcher.starts == 0  # give a running daemon a moment to answer first
    clock.now += DragSession.START_AFTER_S
    session.tick()
    assert launcher.starts == 1 and session.daemon_state == "starting"
    assert clients[0].closed and len(clients) == 2  # reconnected after the start
    assert "Starting the DragEdit daemon" in session.daemon_text
    clock.now += 5
    session.tick()
    assert launcher.starts == 1 and not clients[1].submitted
    clients[1].become_ready()
    session.tick()
    assert clients[1].submitted[0]["job_id"] == job.job_id and job.status == "submitted"
    assert session.daemon_state == "ready"


def test_a_daemon_that_dies_on_start_fails_the_job_with_its_log():
    launcher = RecordingLauncher()
    session, clients, clock = session_with("unreachable", launcher)
    job = session.start_drag(make_request())
    session.tick()
    assert launcher.starts == 1
    launcher.code = 1
    clock.now += 3
    session.tick()
    assert session.daemon_state == "unreachable"
    assert "stopped with exit status 1: ImportError: no module named torch" in session.daemon_text
    assert session.take_finished() is job and job.status == "failed" and "exit status 1" in job.error


def test_not_installed_says_to_run_install_py():
    launcher = RecordingLauncher(error=UserError("The DragEdit daemon /x/dragedit does not exist",
                                                 "run 'python3 install.py' in the DragEdit folder"))
    session, clients, clock = session_with("unreachable", launcher)
    job = session.start_drag(make_request())
    session.tick()
    assert job.status == "failed" and "install.py" in job.error
    assert "does not exist" in session.daemon_text


def test_without_a_launcher_an_unreachable_daemon_is_explained():
    session, clients, _ = session_with("unreachable", None, not_startable="the daemon runs on another machine")
    clients[0].error_text = "No reply from the daemon at tcp://10.0.0.2:48611 within 10 s."
    session.tick()
    assert session.daemon_text == ("No reply from the daemon at tcp://10.0.0.2:48611 within 10 s. "
                                   "The daemon runs on another machine.")
    job = session.start_drag(make_request())  # retries with a fresh connection
    assert len(clients) == 2 and job.status == "waiting"
    clients[1].state = "unreachable"
    session.tick()
    assert job.status == "failed"


def test_an_incompatible_daemon_fails_the_job_with_the_clients_sentence():
    session, clients, _ = session_with("incompatible")
    clients[0].error_text = "The daemon speaks protocol 2, this plug-in 1. Run python3 install.py again."
    job = session.start_drag(make_request())
    assert job.status == "failed" and job.error == clients[0].error_text
    assert session.daemon_text == clients[0].error_text


def test_cancel_before_sending_and_while_running():
    session, clients, clock = session_with("connecting", RecordingLauncher())
    job = session.start_drag(make_request())
    assert session.cancel()
    assert job.status == "cancelled" and session.take_finished() is job
    assert clients[0].cancelled == []
    clients[0].become_ready()
    job = session.start_drag(make_request())
    assert session.cancel() and job.status == "cancelling"
    assert clients[0].cancelled == [job.job_id]
    clients[0].inbox = [{"type": "cancelled", "job_id": job.job_id}]
    session.tick()
    assert session.take_finished() is job and job.status == "cancelled"
    assert not session.cancel()


def test_a_daemon_lost_mid_job_fails_it_after_a_grace_period():
    session, clients, clock = session_with("ready")
    job = session.start_drag(make_request())
    clients[0].state = "unreachable"
    clients[0].error_text = "The DragEdit daemon does not answer"
    session.tick()
    assert job.status == "submitted"  # the client may reconnect and fetch the result
    clock.now += DragSession.LOST_AFTER_S + 1
    session.tick()
    assert job.status == "failed" and "stopped answering during the drag" in job.error
    assert "dragedit status" in job.error


def test_a_daemon_back_within_the_grace_period_keeps_the_job():
    session, clients, clock = session_with("ready")
    job = session.start_drag(make_request())
    clients[0].state = "unreachable"
    session.tick()
    clock.now += DragSession.LOST_AFTER_S - 1
    clients[0].state = "ready"
    session.tick()
    clock.now += 5
    session.tick()
    assert job.status == "submitted"


def test_cancel_while_the_daemon_is_gone_finishes_at_once():
    session, clients, clock = session_with("ready")
    job = session.start_drag(make_request())
    clients[0].state = "unreachable"
    assert session.cancel()
    assert job.status == "cancelled" and session.take_finished() is job
    assert clients[0].cancelled == [job.job_id]


def test_engine_state_from_the_welcome_is_shown():
    session, clients, _ = session_with("ready")
    clients[0].welcome = dict(clients[0].welcome, state="loading model")
    assert session.daemon_state == "loading"  # not "ready": the plug-ins wait for the model
    assert session.daemon_text == "Daemon ready, loading the model tiny-test-model..."
    clients[0].welcome = dict(clients[0].welcome, state="ready")
    assert session.daemon_state == "ready"
    clients[0].welcome = dict(clients[0].welcome, state="error",
                              error={"code": "model_error", "message": "no unet folder in /m", "hint": ""})
    assert session.daemon_text.startswith("The daemon could not load the model. No unet folder in /m.")


def test_a_download_in_progress_shows_its_bytes_and_time_left():
    session, clients, _ = session_with("ready")
    download = {"bytes_done": 1_234_000_000, "bytes_total": 4_270_000_000, "eta_s": 170.0,
                "file": "unet/diffusion_pytorch_model.safetensors"}
    clients[0].welcome = dict(clients[0].welcome, state="loading model", model="stable-diffusion-v1-5/sd", loading=download)
    assert session.daemon_state == "loading"
    assert session.daemon_text == "Downloading the model stable-diffusion-v1-5/sd: 1.2 of 4.3 GB, about 3 min left."
    clients[0].welcome = dict(clients[0].welcome, loading=None)  # downloaded: the loader reads the files
    assert session.daemon_text == "Daemon ready, loading the model stable-diffusion-v1-5/sd..."


OFFLINE_ERROR = {"code": "model_load_failed", "hint": "check --model; the daemon log is /home/a/dragedit.log",
                 "message": "the model 'runwayml/stable-diffusion-v1-5' could not be loaded (OSError: We couldn't "
                            "connect to 'https://huggingface.co' to load this file, couldn't find it in the cached "
                            "files and it looks like runwayml/stable-diffusion-v1-5 is not the path to a directory...)"}


def test_a_missing_model_is_two_sentences_naming_the_log_and_the_demo_model():
    session, clients, _ = session_with("ready")
    clients[0].welcome = dict(clients[0].welcome, state="error", error=OFFLINE_ERROR,
                              model="runwayml/stable-diffusion-v1-5", log_file="/home/a/dragedit.log")
    assert session.model_missing
    text = session.daemon_text
    assert text.startswith("The daemon's model runwayml/stable-diffusion-v1-5 is not on this machine")
    assert "demo model" in text and "/home/a/dragedit.log" in text
    assert "huggingface.co" not in text and text.count(". ") <= 2  # not the loader's paragraph
    assert [m.name for m in session.methods] == ["dragdiffusion", "goodrag"]  # drags with another model still run


class StoppableLauncher(RecordingLauncher):
    stopped = 0

    def stop(self):
        self.stopped += 1


@pytest.mark.parametrize("engine_state,error,stopped", [("error", OFFLINE_ERROR, 1), ("ready", None, 0)])
def test_closing_stops_a_started_daemon_only_when_its_model_failed(engine_state, error, stopped):
    launcher = StoppableLauncher()
    session, clients, _ = session_with("ready", launcher=launcher)
    clients[0].welcome = dict(clients[0].welcome, state=engine_state, error=error)
    session.close()
    assert launcher.stopped == stopped


# ---------------------------------------------------------------- launcher with real processes


def write_install(folder, exe, endpoint=ENDPOINT):
    (folder / "dragedit_install.json").write_text(json.dumps({"dragedit": str(exe), "endpoint": endpoint, "version": "0.1.0"}))


def test_read_install_info(tmp_path):
    with pytest.raises(UserError) as err:
        read_install_info(tmp_path)
    assert "not installed" in str(err.value) and "install.py" in str(err.value)
    (tmp_path / "dragedit_install.json").write_text("{broken")
    with pytest.raises(UserError, match="cannot be read"):
        read_install_info(tmp_path)
    write_install(tmp_path, "/opt/dragedit/.venv/bin/dragedit")
    assert read_install_info(tmp_path) == InstallInfo("/opt/dragedit/.venv/bin/dragedit", ENDPOINT, "0.1.0")


def test_launcher_starts_serve_detached_with_the_endpoint(tmp_path):
    argv_file = tmp_path / "argv"
    exe = tmp_path / "dragedit"
    exe.write_text(f"#!{sys.executable}\nimport os, sys\n"
                   f"open({str(argv_file)!r}, 'w').write(' '.join(sys.argv[1:]) + ' sid=' + str(os.getsid(0) == os.getpid()) "
                   f"+ ' pythonpath=' + os.environ.get('PYTHONPATH', '-'))\n"
                   "print('daemon failed: port busy', file=sys.stderr)\nsys.exit(3)\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    launcher = DaemonLauncher(InstallInfo(str(exe), ENDPOINT), ENDPOINT, log_path=tmp_path / "serve.log")
    os.environ["PYTHONPATH"] = "/krita/python"  # the editor's own Python path must not leak into the daemon
    try:
        launcher.start()
    finally:
        del os.environ["PYTHONPATH"]
    launcher.process.wait(timeout=30)
    assert argv_file.read_text() == f"serve --endpoint {ENDPOINT} sid=True pythonpath=-"
    assert launcher.exited_with() == 3
    assert launcher.log_tail() == "daemon failed: port busy"


def test_launcher_reports_a_missing_executable(tmp_path):
    launcher = DaemonLauncher(InstallInfo(str(tmp_path / "nope"), ENDPOINT), ENDPOINT, log_path=tmp_path / "log")
    with pytest.raises(UserError, match="does not exist.*install.py"):
        launcher.start()


def test_only_local_endpoints_are_startable():
    assert is_local_endpoint("tcp://127.0.0.1:48611") and is_local_endpoint("tcp://localhost:1")
    assert not is_local_endpoint("tcp://192.168.1.5:48611")


def test_launcher_stops_only_the_daemon_it_started(tmp_path):
    exe = tmp_path / "dragedit"
    exe.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    idle = DaemonLauncher(InstallInfo(str(exe), ENDPOINT), ENDPOINT, log_path=tmp_path / "idle.log")
    idle.stop()  # started nothing (e.g. the artist's own daemon answered): nothing to stop
    assert idle.process is None
    launcher = DaemonLauncher(InstallInfo(str(exe), ENDPOINT), ENDPOINT, log_path=tmp_path / "serve.log")
    launcher.start()
    assert launcher.exited_with() is None
    launcher.stop()
    assert launcher.exited_with() is not None
