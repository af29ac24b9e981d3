"""The Drag Edit dialog (dragedit_gimp.dialog) on fake Gtk/GimpUi widgets and a scripted daemon."""
from __future__ import annotations

import json

import fake_gimp
import pytest
from gimp_fake_daemon import FakeDaemonClient
from scenes import scene

from dragedit_gimp import PROCEDURE, plugin, run
from dragedit_gimp import dialog as dialog_module
from dragedit_gimp.dialog import DragDialog, ParamForm
from dragedit_protocol.editor.errors import UserError
from dragedit_protocol.editor.params import ParamStore, methods_from_welcome
from dragedit_protocol.editor.prepare import QUIET_S, RECHECK_S

OK, STOP, CLOSE = fake_gimp.ResponseType.OK, fake_gimp.ResponseType.CANCEL, fake_gimp.ResponseType.CLOSE


class Clock:
    """The session's clock: time passes only when a test says so (the prepare waits for a quiet scene)."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def make_dialog(tmp_path, monkeypatch, client, image, clock=None, **config_values):
    monkeypatch.delenv(run.ENDPOINT_VARIABLE, raising=False)
    procedure = plugin.DragEditPlugIn().do_create_procedure(PROCEDURE)
    config = procedure.create_config()
    for name, value in config_values.items():
        config.set_property(name, value)
    session = run.make_session(tmp_path, make_client=lambda endpoint: client, clock=clock or Clock())
    return DragDialog(procedure, config, image, session), config


def play(dialog: DragDialog, *steps):
    """Run the dialog; each step (condition, action) fires on the first tick its condition holds."""
    pending = list(steps)

    def driver():
        if pending and pending[0][0]():
            pending.pop(0)[1]()
        return True

    fake_gimp.GLib.timeout_add(50, driver)
    added = dialog.run()
    assert not pending, f"{len(pending)} step(s) never ran"
    return added


def widgets(dialog: DragDialog, kind):
    return [w for w in dialog.dialog.walk() if type(w) is kind]


def test_form_shows_main_parameters_and_the_rest_under_advanced():
    method = methods_from_welcome(FakeDaemonClient().welcome)[0]
    store = ParamStore(values={"dragdiffusion": {"lr": 0.5}})
    form = ParamForm(method, store)
    grid, expander = form.widget.children
    assert [type(w).__name__ for w in grid.children] == ["Label", "SpinButton"]
    assert grid.children[0].text == "N steps" and grid.children[1].value == 40
    assert grid.children[1].tooltip == "Drag iterations."
    assert expander.props["label"] == "Advanced"
    advanced = expander.children[0].children
    assert advanced[1].get_text() == "0.5" and advanced[2].get_active() is True
    assert form.values() == {"n_steps": 40, "lr": 0.5, "use_lora": True}
    advanced[1].set_text("fast")
    with pytest.raises(UserError, match="Drag rate must be a number"):
        form.values()


def test_drag_from_the_dialog_adds_a_layer_remembers_values_and_stays_open(tmp_path, monkeypatch):
    client = FakeDaemonClient()
    image, layer = scene()
    dialog, config = make_dialog(tmp_path, monkeypatch, client, image, method="gooddrag")

    def press_drag():
        assert dialog.method_combo.get_active_id() == "gooddrag"  # the remembered method
        dialog.form.fields[0].widget.set_active_id("l2")
        dialog.seed_entry.set_text("42")
        dialog.dialog.respond(OK)

    added = play(dialog,
                 (lambda: dialog.form is not None, press_drag),
                 (lambda: "Added the layer" in dialog.status_label.text, lambda: dialog.dialog.respond(CLOSE)))
    assert added == 1 and dialog.dialog.destroyed
    assert [l.get_name() for l in image.get_layers()] == ["GoodDrag drag (seed 42)", "photo"]
    assert client.submitted[0]["params"] == {"tracker": "l2"} and client.submitted[0]["seed"] == 42
    assert (config.get_property("method"), json.loads(config.get_property("params")),
            config.get_property("seed")) == ("gooddrag", {"tracker": "l2"}, 42)
    assert json.loads(config.get_property("settings"))["values"]["gooddrag"] == {"tracker": "l2"}
    assert "Daemon ready: tiny-test-model on cpu." == dialog.daemon_label.text
    assert ("init", "Drag Edit (GoodDrag): waiting for the daemon...") in fake_gimp.PROGRESS


def test_an_image_error_is_shown_in_the_dialog_and_nothing_changes(tmp_path, monkeypatch):
    client = FakeDaemonClient()
    image, layer = scene(strokes=(((10, 12),),))
    dialog, _ = make_dialog(tmp_path, monkeypatch, client, image)
    added = play(dialog,
                 (lambda: dialog.form is not None, lambda: dialog.dialog.respond(OK)),
                 (lambda: True, lambda: dialog.dialog.respond(CLOSE)))
    assert added == 0
    assert dialog.status_label.text.startswith("Drag stroke 1 has a single point. Draw each stroke")
    assert image.get_layers() == [layer] and client.submitted == []


def test_a_daemon_error_is_shown_and_the_image_left_as_it_was(tmp_path, monkeypatch):
    client = FakeDaemonClient(behaviour="error")
    image, layer = scene()
    dialog, _ = make_dialog(tmp_path, monkeypatch, client, image)
    play(dialog,
         (lambda: dialog.form is not None, lambda: dialog.dialog.respond(OK)),
         (lambda: "memory" in dialog.status_label.text, lambda: dialog.dialog.respond(CLOSE)))
    assert "The image was not changed." in dialog.status_label.text
    assert image.get_layers() == [layer]


def test_stop_cancels_the_running_drag(tmp_path, monkeypatch):
    client = FakeDaemonClient(behaviour="hold")
    image, layer = scene()
    dialog, _ = make_dialog(tmp_path, monkeypatch, client, image)
    sensitivity = []

    def press_stop():
        sensitivity.append((dialog.dialog.sensitive[OK], dialog.dialog.sensitive[STOP]))
        dialog.dialog.respond(STOP)

    play(dialog,
         (lambda: dialog.form is not None, lambda: dialog.dialog.respond(OK)),
         (lambda: abs(dialog.progress_bar.fraction - 0.675) < 1e-9, press_stop),
         (lambda: "Cancelled" in dialog.status_label.text, lambda: dialog.dialog.respond(CLOSE)))
    assert sensitivity == [(False, True)]  # while running: Drag greyed out, Stop available
    assert client.cancelled == [client.submitted[0]["job_id"]]
    assert image.get_layers() == [layer]
    assert fake_gimp.PROGRESS[-1] == ("end",)


def test_switching_methods_keeps_each_methods_values(tmp_path, monkeypatch):
    client = FakeDaemonClient()
    image, _ = scene()
    dialog, _ = make_dialog(tmp_path, monkeypatch, client, image)
    seen = []

    def edit_and_switch():
        dialog.form.fields[0].widget.set_value(7)
        dialog.method_combo.set_active_id("gooddrag")
        dialog.method_combo.set_active_id("dragdiffusion")
        seen.append(dialog.form.fields[0].widget.get_value_as_int())
        dialog.dialog.respond(CLOSE)

    play(dialog, (lambda: dialog.form is not None, edit_and_switch))
    assert seen == [7]


def test_unreachable_daemon_is_explained_and_drag_is_greyed_out(tmp_path, monkeypatch):
    client = FakeDaemonClient(state="unreachable", error_text="The DragEdit daemon at tcp://127.0.0.1:1 does not answer.")
    image, _ = scene()
    dialog, _ = make_dialog(tmp_path, monkeypatch, client, image)
    play(dialog, (lambda: "does not answer" in dialog.daemon_label.text, lambda: dialog.dialog.respond(CLOSE)))
    assert "install.py" in dialog.daemon_label.text
    assert dialog.dialog.sensitive[OK] is False


def test_the_drag_shows_a_live_preview_and_its_status_once(tmp_path, monkeypatch):
    client = FakeDaemonClient()
    image, _ = scene()
    dialog, _ = make_dialog(tmp_path, monkeypatch, client, image)
    seen = []

    def look():
        pixbuf = dialog.preview_image.pixbuf
        seen.append((dialog.progress_bar.text, dialog.status_label.text,
                     None if pixbuf is None else (pixbuf.width, pixbuf.height, pixbuf.data[:1])))

    play(dialog,
         (lambda: dialog.form is not None, lambda: dialog.dialog.respond(OK)),
         (lambda: dialog.progress_bar.text.startswith("Dragging 1/2"), look),
         (lambda: "Added the layer" in dialog.status_label.text, lambda: dialog.dialog.respond(CLOSE)))
    assert client.submitted[0]["preview_every"] > 0
    [(text, status, preview)] = seen
    assert status == ""  # the running job's status is in the progress bar only, not a second time below it
    assert preview == (dialog_module.PREVIEW_WIDTH, dialog_module.PREVIEW_WIDTH // 2, b"\x80")  # 4x2 grey, scaled
    assert dialog.preview_image.pixbuf is None and dialog.progress_bar.text == ""  # finished: the layer tells


def test_the_prompt_field_is_wide_enough_for_its_hint(tmp_path, monkeypatch):
    image, _ = scene()
    dialog, _ = make_dialog(tmp_path, monkeypatch, FakeDaemonClient(), image)
    props = dialog.prompt_entry.props
    assert props["width_chars"] >= len(props["placeholder_text"]) and props["hexpand"] is True


def test_soft_edge_is_set_in_the_dialog_remembered_and_softens_the_mask_sent(tmp_path, monkeypatch):
    client = FakeDaemonClient()
    image, _ = scene()
    dialog, config = make_dialog(tmp_path, monkeypatch, client, image)
    assert dialog.soft_edge.get_value_as_int() == 8  # the default, as in Krita

    def press_drag():
        dialog.soft_edge.set_value(2)
        dialog.dialog.respond(OK)

    play(dialog,
         (lambda: dialog.form is not None, press_drag),
         (lambda: "Added the layer" in dialog.status_label.text, lambda: dialog.dialog.respond(CLOSE)))
    assert config.get_property("soft-edge") == 2 and fake_gimp.Selection.FEATHERED == [2.0]
    assert any(0 < v < 255 for v in client.submitted[0]["mask"])


def test_the_engines_feather_is_not_a_second_soft_edge_field():
    welcome = {"methods": [{"name": "m", "title": "M", "params": [
        {"name": "feather", "type": "int", "default": 4, "description": "Soft edge."},
        {"name": "drag_steps", "type": "int", "default": 40, "description": "Steps.", "advanced": False}]}]}
    form = ParamForm(methods_from_welcome(welcome)[0], ParamStore())
    assert [field.spec.name for field in form.fields] == ["drag_steps"]


@pytest.mark.parametrize("selection, says", [((4, 4, 36, 36), "Only the selected region may change."),
                                             (None, "No selection: the area around the drag points may change")])
def test_the_dialog_says_what_may_change(tmp_path, monkeypatch, selection, says):
    image, _ = scene(selection=selection)
    dialog, _ = make_dialog(tmp_path, monkeypatch, FakeDaemonClient(), image)
    assert says in dialog.status_label.text


@pytest.mark.parametrize("choice,typed,sent", [("", "", None), ("toy", "", "toy"),
                                               ("other", "/models/sd15.safetensors", "/models/sd15.safetensors")])
def test_the_model_chosen_in_the_dialog_goes_with_the_drag_and_is_remembered(tmp_path, monkeypatch, choice, typed,
                                                                             sent):
    client = FakeDaemonClient()
    image, _ = scene()
    dialog, config = make_dialog(tmp_path, monkeypatch, client, image)

    def press_drag():
        dialog.model_combo.set_active_id(choice)
        dialog.model_entry.set_text(typed)
        dialog.dialog.respond(OK)

    play(dialog,
         (lambda: dialog.form is not None, press_drag),
         (lambda: "Added the layer" in dialog.status_label.text, lambda: dialog.dialog.respond(CLOSE)))
    assert client.submitted[0]["model"] == sent
    assert config.get_property("model") == (sent or "")


def test_with_the_daemons_model_missing_the_dialog_asks_for_another_model(tmp_path, monkeypatch):
    client = FakeDaemonClient()
    client.welcome = dict(client.welcome, state="error", model="runwayml/stable-diffusion-v1-5",
                          error={"code": "model_load_failed", "message": "offline", "hint": ""})
    image, layer = scene()
    dialog, _ = make_dialog(tmp_path, monkeypatch, client, image)
    play(dialog,
         (lambda: dialog.form is not None, lambda: dialog.dialog.respond(OK)),
         (lambda: True, lambda: dialog.dialog.respond(CLOSE)))
    assert dialog.daemon_label.text.startswith("The daemon's model runwayml/stable-diffusion-v1-5 is not on this")
    assert dialog.status_label.text.startswith("The daemon's model is not on this machine. Choose another Model")
    assert client.submitted == [] and image.get_layers() == [layer]


def without_id(prepared: dict) -> dict:
    return {name: value for name, value in prepared.items() if name != "prepare_id"}


def test_with_a_selection_the_dialog_prepares_what_drag_sends_and_says_when_ready(tmp_path, monkeypatch):
    client, clock = FakeDaemonClient(), Clock()
    image, _ = scene()
    dialog, _ = make_dialog(tmp_path, monkeypatch, client, image, clock=clock)
    shown = []

    def type_a_prompt():
        dialog.seed_entry.set_text("42")
        dialog.prompt_entry.set_text("a photo")

    def look():
        shown.append((dialog.readiness_label.text, dialog.readiness_label.shown))

    play(dialog,
         (lambda: dialog.form is not None, type_a_prompt),
         (lambda: True, look),
         (lambda: True, lambda: setattr(clock, "now", clock.now + QUIET_S)),
         (lambda: "3/8" in dialog.readiness_label.text, look),
         (lambda: "Ready" in dialog.readiness_label.text, look),
         (lambda: True, lambda: dialog.dialog.respond(OK)),
         (lambda: True, look),  # a drag runs
         (lambda: "Added the layer" in dialog.status_label.text, lambda: dialog.dialog.respond(CLOSE)))
    assert shown == [("", False), ("Getting ready for the drag: 3/8 (about 5 s left)", True),
                     ("Ready: the drag will start at once.", True), ("", False)]
    prepared, submitted = without_id(client.prepared[0]), client.submitted[0]
    assert len(client.prepared) == 1 and prepared == {name: submitted[name] for name in prepared}
    assert prepared["prompt"] == "a photo" and prepared["mask"] is not None


def test_the_same_content_is_not_prepared_again_and_a_new_selection_is(tmp_path, monkeypatch):
    client, clock = FakeDaemonClient(), Clock()
    image, _ = scene()
    dialog, _ = make_dialog(tmp_path, monkeypatch, client, image, clock=clock)

    def wait(seconds):
        return lambda: setattr(clock, "now", clock.now + seconds)

    play(dialog,
         (lambda: dialog.form is not None, wait(QUIET_S)),
         (lambda: "Ready" in dialog.readiness_label.text, wait(RECHECK_S)),  # the layer is read again: the same
         (lambda: True, lambda: image.select_rectangle(fake_gimp.ChannelOps.REPLACE, 2, 2, 40, 40)),
         (lambda: True, wait(QUIET_S)),
         (lambda: len(client.prepared) == 2, lambda: dialog.dialog.respond(CLOSE)))
    assert len(client.prepared) == 2 and client.prepared[0]["mask"] != client.prepared[1]["mask"]


def test_a_failed_prepare_shows_its_reason_in_one_sentence(tmp_path, monkeypatch):
    client = FakeDaemonClient(prepare_error={"code": "out_of_memory", "hint": "",
                                             "message": "CUDA out of memory. Tried to allocate 2 GiB"})
    clock = Clock()
    image, _ = scene()
    dialog, _ = make_dialog(tmp_path, monkeypatch, client, image, clock=clock)
    play(dialog,
         (lambda: dialog.form is not None, lambda: setattr(clock, "now", clock.now + QUIET_S)),
         (lambda: "Could not" in dialog.readiness_label.text, lambda: dialog.dialog.respond(CLOSE)))
    assert dialog.readiness_label.text == "Could not get ready for the drag: CUDA out of memory."


def test_without_a_selection_nothing_is_prepared(tmp_path, monkeypatch):
    client, clock = FakeDaemonClient(), Clock()
    image, _ = scene(selection=None)
    dialog, _ = make_dialog(tmp_path, monkeypatch, client, image, clock=clock)
    play(dialog,
         (lambda: dialog.form is not None, lambda: setattr(clock, "now", clock.now + QUIET_S)),
         (lambda: True, lambda: setattr(clock, "now", clock.now + RECHECK_S)),
         (lambda: True, lambda: dialog.dialog.respond(CLOSE)))
    assert client.prepared == [] and dialog.readiness_label.text == ""
