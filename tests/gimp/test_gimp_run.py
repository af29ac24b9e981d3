"""Non-interactive drags (dragedit_gimp.run) against fake_gimp and a scripted daemon client."""
from __future__ import annotations

import json
import time

import fake_gimp
import pytest
from gimp_fake_daemon import FakeDaemonClient
from scenes import HEIGHT, WIDTH, pattern, pixel, scene

from dragedit_gimp import run
from dragedit_gimp.settings import DragArgs
from dragedit_protocol.editor.errors import UserError


def session_with(client: FakeDaemonClient, tmp_path, monkeypatch):
    monkeypatch.delenv(run.ENDPOINT_VARIABLE, raising=False)
    return run.make_session(tmp_path, make_client=lambda endpoint: client)


def test_drag_adds_an_edited_layer_and_reports_progress(tmp_path, monkeypatch):
    client = FakeDaemonClient()
    image, layer = scene(offsets=(8, 6), selection=(4, 4, 36, 36))
    args = DragArgs(method="dragdiffusion", params={"n_steps": 12}, seed=7, prompt="a cat")
    new = run.run_noninteractive(session_with(client, tmp_path, monkeypatch), image, [layer], args)

    sent = client.submitted[0]
    assert (sent["method"], sent["params"], sent["seed"], sent["prompt"]) == ("dragdiffusion", {"n_steps": 12}, 7, "a cat")
    assert len(sent["points"]) == 2 and sent["mask"] is not None
    assert image.get_layers() == [new, layer]
    assert new.get_name() == "DragDiffusion drag (seed 7)"
    assert layer.pixels == bytearray(pattern(WIDTH, HEIGHT))
    assert pixel(new, 2, 4) != pixel(layer, 2, 4)          # inside the selection: edited
    assert pixel(new, 42, 34) == pixel(layer, 42, 34)      # outside: identical
    kinds = [call[0] for call in fake_gimp.PROGRESS]
    assert kinds[0] == "init" and kinds[-1] == "end"
    texts = [call[1] for call in fake_gimp.PROGRESS if call[0] == "text"]
    assert "Drag Edit (DragDiffusion): Dragging 1/2" in texts
    assert any(t.startswith("Drag Edit (DragDiffusion): Dragging 2/2, about") for t in texts), texts
    assert ("update", 0.675) in fake_gimp.PROGRESS  # one bar for the whole job: half of the drag phase


def test_empty_method_means_the_daemons_first(tmp_path, monkeypatch):
    client = FakeDaemonClient()
    image, layer = scene(selection=None)
    run.run_noninteractive(session_with(client, tmp_path, monkeypatch), image, [layer], DragArgs())
    assert client.submitted[0]["method"] == "dragdiffusion"
    assert client.submitted[0]["mask"] is not None and client.submitted[0]["seed"] is None  # the area around the points


@pytest.mark.parametrize("args, message", [
    (DragArgs(method="dragdiffusion", params={"n_steps": 0}), "N steps must be between 1 and 200"),
    (DragArgs(method="dragdiffusion", params={"steps": 3}), "DragDiffusion has no parameter 'steps'.*n_steps, lr"),
    (DragArgs(method="nodrag"), "no drag method 'nodrag'.*dragdiffusion, gooddrag"),
])
def test_arguments_are_checked_against_the_published_schema(tmp_path, monkeypatch, args, message):
    client = FakeDaemonClient()
    image, layer = scene()
    with pytest.raises(UserError, match=message):
        run.run_noninteractive(session_with(client, tmp_path, monkeypatch), image, [layer], args)
    assert client.submitted == [] and image.get_layers() == [layer]


def test_image_errors_come_before_contacting_the_daemon(tmp_path, monkeypatch):
    client = FakeDaemonClient()
    image, layer = scene(strokes=(((10, 12),),))
    with pytest.raises(UserError, match="single point"):
        run.run_noninteractive(session_with(client, tmp_path, monkeypatch), image, [layer], DragArgs())
    assert client.polls == 0


def test_daemon_out_of_memory_is_a_clear_message_and_no_layer(tmp_path, monkeypatch):
    client = FakeDaemonClient(behaviour="error")
    image, layer = scene()
    with pytest.raises(UserError, match="ran out of memory.*smaller region"):
        run.run_noninteractive(session_with(client, tmp_path, monkeypatch), image, [layer], DragArgs())
    assert image.get_layers() == [layer] and image.undo_log == []
    assert fake_gimp.PROGRESS[-1] == ("end",)


def test_cancelled_job_adds_nothing(tmp_path, monkeypatch):
    client = FakeDaemonClient(behaviour="hold")
    session = session_with(client, tmp_path, monkeypatch)
    image, layer = scene()
    polls = []

    def cancel_after_a_while(*_):
        polls.append(1)
        if len(polls) == 5:
            session.cancel()
        return True

    fake_gimp.GLib.timeout_add(50, cancel_after_a_while)
    with pytest.raises(run.DragCancelled):
        run.run_noninteractive(session, image, [layer], DragArgs())
    assert client.cancelled == [client.submitted[0]["job_id"]]
    assert image.get_layers() == [layer]


def test_incompatible_daemon_says_to_reinstall(tmp_path, monkeypatch):
    client = FakeDaemonClient(state="incompatible", error_text="The DragEdit plug-in and daemon are different "
                              "versions (protocol 2). Update both by running install.py again.")
    image, layer = scene()
    with pytest.raises(UserError, match="different versions.*install.py"):
        run.run_noninteractive(session_with(client, tmp_path, monkeypatch), image, [layer], DragArgs())
    assert client.submitted == []


def test_unreachable_daemon_without_install_record_says_how_to_install(tmp_path, monkeypatch):
    client = FakeDaemonClient(state="unreachable", error_text="The DragEdit daemon at tcp://127.0.0.1:1 does not answer.")
    image, layer = scene()
    with pytest.raises(UserError, match="does not answer.*install.py") as err:
        run.run_noninteractive(session_with(client, tmp_path, monkeypatch), image, [layer], DragArgs())
    assert "dragedit_install.json is missing" in str(err.value)


def test_session_uses_the_install_record_and_starts_the_daemon(tmp_path, monkeypatch):
    monkeypatch.delenv(run.ENDPOINT_VARIABLE, raising=False)
    marker = tmp_path / "started-with"
    exe = tmp_path / "dragedit"
    exe.write_text(f'#!/bin/sh\necho "$@" > {marker}\n')
    exe.chmod(0o755)
    (tmp_path / "dragedit_install.json").write_text(json.dumps({"dragedit": str(exe), "endpoint": "tcp://127.0.0.1:5"}))
    session = run.make_session(tmp_path, make_client=lambda e: FakeDaemonClient(e, state="unreachable"))
    assert session.endpoint == "tcp://127.0.0.1:5"
    session.tick()  # nobody answers: the installed daemon is started
    assert session.daemon_state == "starting"
    for _ in range(100):
        if marker.exists() and marker.read_text():
            break
        time.sleep(0.05)
    assert marker.read_text().split() == ["serve", "--endpoint", "tcp://127.0.0.1:5"]


def test_endpoint_variable_wins_and_a_remote_daemon_is_not_started(tmp_path, monkeypatch):
    (tmp_path / "dragedit_install.json").write_text(json.dumps({"dragedit": "/bin/true", "endpoint": "tcp://127.0.0.1:5"}))
    monkeypatch.setenv(run.ENDPOINT_VARIABLE, "tcp://10.0.0.2:48611")
    session = run.make_session(tmp_path, make_client=lambda e: FakeDaemonClient(e, state="unreachable",
                                                                                  error_text="No answer."))
    assert session.endpoint == "tcp://10.0.0.2:48611"
    session.tick()
    assert session.daemon_state == "unreachable"
    assert "on another machine" in session.daemon_text


def test_a_script_can_name_the_model(tmp_path, monkeypatch):
    client = FakeDaemonClient()
    image, layer = scene()
    run.run_noninteractive(session_with(client, tmp_path, monkeypatch), image, [layer], DragArgs(model="toy"))
    assert client.submitted[0]["model"] == "toy"
