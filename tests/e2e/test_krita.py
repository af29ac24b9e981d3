"""The Krita plug-in inside the real Krita (Debian's 5.1.5 under Xvfb) against a real daemon.

The plug-in under test is the one install.py installs (with its vendored pyzmq); the daemon
is `dragedit serve` with the tiny random model. The scripts in krita_scripts/ run inside
Krita, trigger the plug-in's actions, check the document and write a JSON report.
Run: .venv/bin/python -m pytest -m editor tests/e2e/test_krita.py
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import editors

pytestmark = pytest.mark.editor

SCRIPTS = Path(__file__).resolve().parent / "krita_scripts"


@pytest.fixture(scope="module")
def krita_plugin(krita, tmp_path_factory) -> dict:
    """The Krita plug-in as install.py installs it (only Krita: no GIMP chroot needed here)."""
    return editors.install_plugins(tmp_path_factory.mktemp("krita-install"), editors=("krita",))


def run_script(name: str, plugin: dict, endpoint: str, tmp_path: Path, shots: Path | None = None) -> dict:
    report = tmp_path / "report.json"
    env = {"DRAGEDIT_ENDPOINT": endpoint, "DRAGEDIT_E2E_REPORT": str(report)}
    if shots is not None:
        env["DRAGEDIT_E2E_SHOTS"] = str(shots)
    rc, log = editors.run_in_krita(SCRIPTS / name, [plugin["krita_dir"]], env, timeout_s=420)
    assert rc == 0, log
    return json.loads(report.read_text())


def test_every_docker_control_works_when_clicked(krita_plugin, daemon, tmp_path):
    """Pointer clicks and key presses through the X server on every control of the docker."""
    shots = editors.screenshot_folder("krita")
    report = run_script("click_docker_in_krita.py", krita_plugin, daemon, tmp_path, shots)
    print(f"screenshots of the clicked Krita docker: {shots}")
    assert report["clicked"][:3] == ["Advanced", "method GoodDrag", "method DragDiffusion"]
    assert {"parameter edit", "Reset to defaults", "Live preview", "Add point pair", "Remove", "Drag", "Cancel",
            "Clear", "Drag without pairs"} <= set(report["clicked"])
    assert report["layer"].startswith("DragDiffusion") and report["inside_changed"] > 0
    assert report["outside_changed"] == 0
    assert report["error_shown"].startswith("The 'Drag points' layer has no point pairs")
    assert len(report["shots"]) >= 5 and all(Path(p).stat().st_size > 10_000 for p in report["shots"])


def test_drag_adds_a_layer_changed_only_inside_the_selection(krita_plugin, daemon, tmp_path):
    report = run_script("drag_in_krita.py", krita_plugin, daemon, tmp_path)
    assert report["layer"].startswith("DragDiffusion drag (seed 1234")
    assert report["inside_changed"] > 0
    assert "drag" in report["phases"] and report["progress_messages"] > 0


def test_cancel_adds_no_layer_and_the_daemon_keeps_serving(krita_plugin, daemon, tmp_path):
    report = run_script("cancel_in_krita.py", krita_plugin, daemon, tmp_path)
    assert report["progress_at_cancel"][2] > 0
    assert report["error_shown"].startswith("The 'Drag points' layer has no point pairs.")
    assert editors.daemon_answers(daemon), "the daemon stopped answering after the cancel"
