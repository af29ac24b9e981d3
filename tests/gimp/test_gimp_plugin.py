"""The procedure GIMP registers and its non-interactive runs (dragedit_gimp.plugin) on fake_gimp."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import fake_gimp
import pytest
from gimp_fake_daemon import FakeDaemonClient
from scenes import scene

from dragedit_gimp import PROCEDURE, plugin, registration, run
from dragedit_gimp.settings import read_args, read_store
from dragedit_protocol.editor import drag

Status = fake_gimp.PDBStatusType
PLUGIN_DIR = Path(__file__).resolve().parents[2] / "gimp_plugin" / "dragedit"


@pytest.fixture
def procedure():
    return plugin.DragEditPlugIn().do_create_procedure(PROCEDURE)


@pytest.fixture
def client(monkeypatch):
    """The scripted daemon every run of the procedure talks to."""
    fake = FakeDaemonClient()
    monkeypatch.delenv(run.ENDPOINT_VARIABLE, raising=False)
    monkeypatch.setattr(plugin, "make_session", lambda vendor: run.make_session(vendor, lambda endpoint: fake))
    return fake


def call(procedure, image, drawables, run_mode=fake_gimp.RunMode.NONINTERACTIVE, **values):
    config = procedure.create_config()
    for name, value in values.items():
        config.set_property(name.replace("_", "-"), value)
    return procedure.run_func(procedure, run_mode, image, drawables, config, None), config


def test_registers_one_procedure_with_the_script_arguments(procedure):
    assert plugin.DragEditPlugIn().do_query_procedures() == [PROCEDURE]
    assert procedure.menu_paths == ["<Image>/Filters/Distorts"]
    assert procedure.info["menu_label"] == "_Drag Edit..."
    assert procedure.info["image_types"] == "*"
    assert {n: a["default"] for n, a in procedure.arguments.items()} == {
        "method": "", "params": "{}", "path-name": "", "seed": -1, "prompt": "", "soft-edge": 8, "model": ""}
    assert "settings" in procedure.aux_arguments


def test_noninteractive_run_with_arguments_adds_the_layer(procedure, client):
    image, layer = scene()
    values, _ = call(procedure, image, [layer], method="gooddrag", params='{"tracker": "l2"}', seed=5)
    assert values.index(0) == Status.SUCCESS, values.values
    assert client.submitted[0]["method"] == "gooddrag" and client.submitted[0]["params"] == {"tracker": "l2"}
    assert [l.get_name() for l in image.get_layers()] == ["GoodDrag drag (seed 5)", "photo"]
    assert client.closed


def test_the_default_soft_edge_is_the_one_krita_uses():
    assert registration.SOFT_EDGE_PX == drag.SOFT_EDGE_PX


@pytest.mark.parametrize("soft_edge, partial", [(8, True), (0, False)])
def test_soft_edge_argument_softens_the_selection_or_not(procedure, client, soft_edge, partial):
    image, layer = scene()
    values, _ = call(procedure, image, [layer], soft_edge=soft_edge)
    assert values.index(0) == Status.SUCCESS, values.values
    assert any(0 < v < 255 for v in client.submitted[0]["mask"]) is partial


def test_with_last_values_runs_like_a_script(procedure, client):
    image, layer = scene()
    values, _ = call(procedure, image, [layer], run_mode=fake_gimp.RunMode.WITH_LAST_VALS, method="dragdiffusion")
    assert values.index(0) == Status.SUCCESS
    assert len(image.get_layers()) == 2


def test_path_name_argument_selects_the_path(procedure, client):
    image, layer = scene(path_name="arrows")
    values, _ = call(procedure, image, [layer], path_name="arrows")
    assert values.index(0) == Status.SUCCESS
    values, _ = call(procedure, image, [layer], path_name="nothing")
    assert values.index(0) == Status.EXECUTION_ERROR
    assert "no path named 'nothing'" in values.index(1)


@pytest.mark.parametrize("kwargs, message", [
    ({"params": "{steps: 3}"}, "The parameters are not valid JSON"),
    ({"params": "[1, 2]"}, "must be a JSON object"),
    ({"params": '{"n_steps": [1]}'}, "must be a number, true/false or text"),
    ({"method": "dragdiffusion", "params": '{"lr": "fast"}'}, "Drag rate must be a number"),
])
def test_bad_arguments_are_an_execution_error_with_a_hint(procedure, client, kwargs, message):
    image, layer = scene()
    values, _ = call(procedure, image, [layer], **kwargs)
    assert values.index(0) == Status.EXECUTION_ERROR
    assert message in values.index(1)
    assert image.get_layers() == [layer] and client.submitted == []


def test_single_anchor_stroke_is_an_error_not_a_crash(procedure, client):
    image, layer = scene(strokes=(((10, 12), (20, 14)), ((30, 30),)))
    values, _ = call(procedure, image, [layer])
    assert values.index(0) == Status.EXECUTION_ERROR
    assert values.index(1).startswith("Drag stroke 2 has a single point.")
    assert image.get_layers() == [layer]


def test_unexpected_failures_become_a_message(procedure, client, monkeypatch, capsys):
    def broken(*args):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(plugin, "run_noninteractive", broken)
    image, layer = scene()
    values, _ = call(procedure, image, [layer])
    assert values.index(0) == Status.EXECUTION_ERROR
    assert "failed unexpectedly (ZeroDivisionError: boom)" in values.index(1)
    assert "Traceback" in capsys.readouterr().err


def test_config_arguments_round_trip_into_the_dialogs_store(procedure):
    config = procedure.create_config()
    config.set_property("method", "gooddrag")
    config.set_property("params", '{"tracker": "l2"}')
    config.set_property("seed", 9)
    config.set_property("settings", '{"method": "dragdiffusion", "values": {"dragdiffusion": {"n_steps": 3}}}')
    args = read_args(config)
    assert (args.method, args.params, args.seed, args.path_name) == ("gooddrag", {"tracker": "l2"}, 9, "")
    store = read_store(config)
    assert store.method == "gooddrag" and store.seed == 9
    assert store.values == {"dragdiffusion": {"n_steps": 3}, "gooddrag": {"tracker": "l2"}}


def run_entry_point(monkeypatch):
    """Execute dragedit.py as GIMP does; returns the plug-in class it handed to Gimp.main."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    runpy.run_path(str(PLUGIN_DIR / "dragedit.py"), run_name="__main__")
    return fake_gimp.MAIN_CALLS[-1]


def test_entry_point_registers_the_plugin(monkeypatch):
    assert run_entry_point(monkeypatch) is plugin.DragEditPlugIn


def test_missing_vendored_packages_leave_a_menu_entry_that_says_how_to_fix_it(monkeypatch):
    for name in [m for m in sys.modules if m.startswith(("dragedit_gimp.", "dragedit_protocol"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dragedit_protocol", None)  # import fails as with no _vendor/
    plugin_class = run_entry_point(monkeypatch)
    assert plugin_class is not plugin.DragEditPlugIn
    procedure = plugin_class().do_create_procedure(PROCEDURE)
    assert procedure.menu_paths == ["<Image>/Filters/Distorts"]
    image, layer = scene()
    values = procedure.run_func(procedure, fake_gimp.RunMode.INTERACTIVE, image, [layer],
                                procedure.create_config(), None)
    assert values.index(0) == Status.EXECUTION_ERROR
    assert "not installed completely" in values.index(1) and "install.py" in values.index(1)
