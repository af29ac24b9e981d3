"""The Krita plug-in inside the real Krita under Xvfb against a real daemon: Debian 12's 5.1.5
(Python 3.11) on the host, and Debian trixie's 5.2.9 (Python 3.13) in the GIMP chroot.

The plug-in under test is the one install.py installs (with its vendored pyzmq); the daemon
is `dragedit serve` with the tiny random model. The scripts in krita_scripts/ run inside
Krita and write a JSON report: click_docker_in_krita.py uses the docker the way an artist
does (pointer and keys through the X server) and saves screenshots; the others drive the
plug-in's actions and check the document in detail.
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
    """The Krita plug-in as install.py installs it for the host's Krita 5.1.5."""
    return {**editors.install_plugins(tmp_path_factory.mktemp("krita-install"), editors=("krita",)), "root": None}


def _chroot_plugin(root: Path, tmp: Path) -> dict:
    """The plug-in as install.py installs it for the Krita of a chroot (pyzmq vendored for its Python)."""
    installed = editors.install_plugins(tmp, editors=("krita",), krita_python=editors.chroot_python_version(root))
    return {**installed, "root": root}


@pytest.fixture(scope="module")
def trixie_krita_plugin(trixie_krita, tmp_path_factory) -> dict:
    """For Debian trixie's Krita 5.2.9 (Python 3.13, PyQt5)."""
    return _chroot_plugin(trixie_krita, tmp_path_factory.mktemp("krita529-install"))


@pytest.fixture(scope="module")
def krita6_plugin(krita6, tmp_path_factory) -> dict:
    """For Debian experimental's Krita 6 (Qt 6, PyQt6)."""
    return _chroot_plugin(krita6, tmp_path_factory.mktemp("krita6-install"))


def run_script(name: str, plugin: dict, endpoint: str, tmp_path: Path, shots: Path | None = None) -> dict:
    report = tmp_path / "report.json"
    env = {"DRAGEDIT_ENDPOINT": endpoint, "DRAGEDIT_E2E_REPORT": str(report)}
    if shots is not None:
        env["DRAGEDIT_E2E_SHOTS"] = str(shots)
    rc, log = editors.run_in_krita(SCRIPTS / name, [plugin["krita_dir"]], env, timeout_s=420, root=plugin["root"])
    assert rc == 0, log
    return json.loads(report.read_text())


KRITAS = {"5.1.5": "krita_plugin", "5.2.9": "trixie_krita_plugin", "6": "krita6_plugin"}


@pytest.fixture(params=list(KRITAS))
def any_krita_plugin(request) -> dict:
    """Each Krita in turn: the host's 5.1.5, trixie's 5.2.9, experimental's 6."""
    return {**request.getfixturevalue(KRITAS[request.param]), "version": request.param}


def test_every_docker_control_works_when_clicked(any_krita_plugin, daemon, tmp_path):
    """Pointer clicks and key presses through the X server on every control of the docker."""
    shots = editors.screenshot_folder("krita-" + any_krita_plugin["version"])
    report = run_script("click_docker_in_krita.py", any_krita_plugin, daemon, tmp_path, shots)
    print(f"screenshots of the clicked Krita docker: {shots}")
    assert report["clicked"][:3] == ["Advanced", "method GoodDrag", "method DragDiffusion"]
    assert {"parameter edit", "Reset to defaults", "Live preview", "Add point pair", "Remove", "Drag", "Cancel",
            "Clear", "Drag without pairs"} <= set(report["clicked"])
    assert report["layer"].startswith("DragDiffusion") and report["inside_changed"] > 0
    # prepared while the pairs were placed: the drag found the fine-tuning and the inversion made
    assert report["ready_text"] == "Ready: the drag will start at once."
    assert {name: report["cache_hits"].get(name) for name in ("lora", "inversion")} == {"lora": True,
                                                                                         "inversion": True}
    assert report["outside_changed"] == 0
    assert report["error_shown"].startswith("The 'Drag points' layer has no point pairs")
    pictures = sorted(shots.glob("*.png"))
    assert [p.name for p in pictures] == [Path(p).name for p in report["shots"]] and len(pictures) >= 5
    assert all(p.stat().st_size > 10_000 for p in pictures)


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


@pytest.fixture(scope="module")
def daemon_without_model(tmp_path_factory):
    """A real daemon on Stable Diffusion 1.5 with the hub unreachable (offline), as on a fresh machine."""
    proc, endpoint = editors.start_daemon("runwayml/stable-diffusion-v1-5", tmp_path_factory.mktemp("offline-home"),
                                          extra_env={"HF_HUB_OFFLINE": "1"})
    yield endpoint
    proc.terminate()
    proc.wait(30)


def test_first_run_without_the_model_offers_the_demo_model(krita_plugin, daemon_without_model, tmp_path):
    shots = editors.screenshot_folder("krita-first-run")
    report = run_script("first_run_in_krita.py", krita_plugin, daemon_without_model, tmp_path, shots)
    missing = report["missing_text"]
    assert missing.startswith("The daemon's model runwayml/stable-diffusion-v1-5 is not on this machine"), missing
    assert "demo model" in missing and "logs/daemon.log" in missing, missing  # what to do, and where the log is
    assert "OSError" not in missing and len(missing) < 400, missing
    assert report["refused_text"].startswith("The daemon's model is not on this machine")
    assert report["layer"].startswith("DragDiffusion drag (seed")
    assert report["ready_text"].startswith("Daemon ready: toy"), report["ready_text"]
