"""DragEdit inside real GIMP 3.0.4 (gimp-console in the trixie chroot), installed by install.py.

The script gimp_scripts/drag_in_gimp.py runs in GIMP's python-fu-eval and calls the procedure
non-interactively: a single-anchor stroke and a grayscale image give clear errors, then a drag of
two strokes through the real daemon on the host (tiny model) must add a new layer that differs
inside the selection and equals the source outside it, with the source unchanged. GIMP's Python
has no pyzmq of its own, so reaching the daemon proves the vendored copy loaded. With an X display
(Xvfb on the host; the chroot reaches it through the abstract socket) the script then drives the
real Drag Edit dialog through a second drag and checks that GTK's main loop kept running.
"""
from __future__ import annotations

import json
from pathlib import Path

import editors
import pytest

pytestmark = pytest.mark.editor

SCRIPT = Path(__file__).resolve().parent / "gimp_scripts" / "drag_in_gimp.py"
# Few steps: the test is about the plug-in, not the quality of the edit.
FAST_PARAMS = {"drag_steps": 2, "lora_steps": 0, "inversion_strength": 0.02}


def test_drag_edit_in_gimp(gimp_root, installed_plugins, daemon):
    plugin = installed_plugins["gimp_plugin"]
    assert (plugin / "_vendor" / "zmq").is_dir(), "install.py did not vendor pyzmq into the GIMP plug-in"
    env = {"DRAGEDIT_ENDPOINT": daemon, "DRAGEDIT_E2E_METHOD": "dragdiffusion",
           "DRAGEDIT_E2E_PARAMS": json.dumps(FAST_PARAMS),
           "DRAGEDIT_E2E_PLUGIN_DIR": f"{editors.GIMP_PLUGINS}/{plugin.name}"}
    with editors.xvfb() as display:
        rc, log = editors.run_in_gimp(SCRIPT, [plugin], {**env, "DISPLAY": display}, timeout_s=600)
    assert rc == 0, log
    assert "single-anchor stroke: Drag stroke 2 has a single point." in log
    assert "drag: layer 'DragDiffusion drag (seed 3)'" in log and "none outside" in log, log
    assert "dialog: layer 'DragDiffusion drag (seed" in log, log


def test_no_daemon_is_a_clear_error_in_gimp(gimp_root, installed_plugins):
    # Nothing listens on this port, and the daemon install.py recorded lives outside the chroot,
    # so the plug-in can neither reach nor start one.
    endpoint = f"tcp://127.0.0.1:{editors.free_port()}"
    env = {"DRAGEDIT_ENDPOINT": endpoint, "DRAGEDIT_E2E_EXPECT_ERROR": "DragEdit daemon"}
    rc, log = editors.run_in_gimp(SCRIPT, [installed_plugins["gimp_plugin"]], env, timeout_s=120)
    assert rc == 0, log
    assert "drag failed as expected" in log and "install.py" in log, log
