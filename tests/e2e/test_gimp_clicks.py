"""The Drag Edit dialog in the real GIMP 3 with its windows, used the way an artist uses it.

GIMP (gimp-3.0, the full program, in the trixie chroot) runs on its own Xvfb with an image that
has a selection and a 'Drag points' path, and opens the dialog (gimp_scripts/open_drag_dialog.py).
Everything after that goes through the X server with xdotool, as a person's pointer and keys do:
the test reads where each widget is from GTK's accessibility tree (gimp_scripts/atspi_probe.py)
and clicks it there. It opens Advanced, edits parameters by typing, presses Drag, watches the
progress and the live preview, presses Stop, waits for the dialog's "Ready" line (the drag
prepared ahead), drags again to a result, and closes the dialog; then checks the image GIMP
holds. Screenshots of each step go to the folder the test prints
($DRAGEDIT_E2E_SHOTS/gimp, default /var/cache/dragedit-e2e/shots/gimp).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Callable

import editors
import numpy as np
import pytest

pytestmark = pytest.mark.editor

SCRIPT = Path(__file__).resolve().parent / "gimp_scripts" / "open_drag_dialog.py"
DIALOG = "Drag Edit"
# Words that would mean the dialog shows a failure (checked on every look at the dialog).
ERROR_WORDS = ("error", "fail", "unexpected", "traceback", "not installed", "exception")
FINE_TUNING_LABELS = ("Fine-tuning steps", "Lora steps")  # the label in words, or the older one
DRAG_RATE_LABELS = ("Drag rate", "Lr")
SCREEN = "1920x1080"  # room for GIMP's window and the dialog beside it
SOFT_EDGE_ROOM = 2  # px: the soft edge fades inside the selection; GIMP's feather may reach this far out
READY = "Ready: the drag will start at once."  # the dialog's line once the daemon has prepared the drag


def _rect_center(widget: dict) -> tuple[int, int]:
    x, y, w, h = widget["rect"]
    return x + w // 2, y + h // 2


def find(widgets: list[dict], role: str, names: tuple[str, ...] = (), prefix: str = "") -> dict | None:
    """The first widget of ``role`` named one of ``names`` or starting with ``prefix`` (neither: any)."""
    for widget in widgets:
        named = widget["name"] in names or (prefix and widget["name"].startswith(prefix))
        if widget["role"] == role and (named or not (names or prefix)):
            return widget
    return None


def field_beside(widgets: list[dict], label: dict, role: str = "spin button") -> dict:
    """The field on the same row as a label, to its right (the dialog's grids put them so)."""
    _, label_y = _rect_center(label)
    for widget in widgets:
        x, y, _, h = widget["rect"]
        if widget["role"] == role and x > label["rect"][0] and y <= label_y <= y + h:
            return widget
    raise AssertionError(f"no {role} beside the label {label['name']!r}")


class Artist:
    """Looks at the dialog (accessibility tree + screenshots) and uses it through the X server."""

    def __init__(self, gimp: editors.GimpWindows, shots: Path):
        self.gimp, self.shots, self.count = gimp, shots, 0
        self.env = {**os.environ, "DISPLAY": gimp.display}

    def look(self) -> list[dict]:
        """The dialog's widgets now; fails if any text in it reports an error."""
        widgets = self.gimp.widgets(DIALOG)
        for widget in widgets:
            if widget["role"] == "label" and any(word in widget["name"].lower() for word in ERROR_WORDS):
                self.shot("error")
                raise AssertionError(f"the dialog shows an error: {widget['name']!r}")
        return widgets

    def wait_for(self, what: str, condition: Callable[[list[dict]], object], timeout_s: float) -> list[dict]:
        """Look at the dialog until ``condition(widgets)`` holds; returns those widgets."""
        deadline = time.monotonic() + timeout_s
        seen: set[tuple] = set()  # what the looks found, for the message when it times out
        while True:
            if self.gimp.process.poll() is not None:
                raise AssertionError(f"GIMP exited (status {self.gimp.process.returncode}) while waiting for "
                                     f"{what}:\n{self.gimp.output()[-4000:]}")
            widgets = self.look()
            if condition(widgets):
                return widgets
            seen.update((w["role"], w.get("value"), tuple(w.get("rect", ())[2:])) for w in widgets
                        if w["role"] not in ("label", "filler", "panel"))
            if time.monotonic() > deadline:
                self.shot("timed-out")
                labels = [w["name"] for w in widgets if w["role"] == "label"]
                raise AssertionError(f"{what}: not seen within {timeout_s:.0f} s; the dialog shows {labels}; "
                                     f"widgets seen meanwhile (role, value, size): {sorted(seen, key=str)}\n"
                                     f"{self.gimp.output()[-4000:]}")
            time.sleep(0.3)

    def xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.env, check=True, timeout=20)

    def click(self, widget: dict) -> None:
        """A left click in the middle of the widget (an expander's: on its arrow and title)."""
        assert "sensitive" in widget["states"], f"{widget['role']} {widget['name']!r} is greyed out"
        x, y = _rect_center(widget)
        if widget["role"] == "toggle button":
            x = widget["rect"][0] + 30
        self.xdotool("mousemove", "--sync", str(x), str(y), "click", "1")
        time.sleep(0.3)

    def type_into(self, field: dict, text: str) -> None:
        """Click a field, replace its content by typing, and leave it with Tab."""
        x, y, w, h = field["rect"]
        self.xdotool("mousemove", "--sync", str(x + min(20, w // 4)), str(y + h // 2), "click", "1")
        self.xdotool("key", "--delay", "60", "ctrl+a")
        self.xdotool("type", "--delay", "40", text)
        self.xdotool("key", "Tab")
        time.sleep(0.3)

    def shot(self, name: str) -> Path:
        """The whole screen (GIMP's image window with the dialog over it) as NN-name.png."""
        self.count += 1
        path = self.shots / f"{self.count:02d}-{name}.png"
        subprocess.run(["import", "-window", "root", str(path)], env=self.env, check=True, timeout=30)
        return path


def _value(widget: dict | None) -> float | None:
    return None if widget is None else widget.get("value")


def test_an_artist_drags_in_the_gimp_dialog_with_clicks(gimp_root, installed_plugins, daemon, tmp_path):
    shots = editors.screenshot_folder("gimp")
    print(f"\nGIMP screenshots: {shots}")
    out_inside = f"{editors.GIMP_WORK}/clicked-out"
    out = gimp_root / out_inside.lstrip("/")
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    env = {"DRAGEDIT_ENDPOINT": daemon, "DRAGEDIT_E2E_OUT": out_inside}
    with editors.xvfb(SCREEN) as display, editors.gimp_gui(SCRIPT, [installed_plugins["gimp_plugin"]], env, display,
                                                     tmp_path / "gimp.log") as gimp:
        artist = Artist(gimp, shots)
        artist.wait_for("the dialog", lambda ws: ws, timeout_s=180)
        # Without a window manager every window opens at the top left and none has the keyboard: do what a
        # window manager does, put the dialog beside the image and give it the keyboard focus.
        artist.xdotool("search", "--name", f"^{DIALOG}$", "windowmove", "%@", "960", "0", "windowfocus", "--sync", "%@")
        widgets = artist.wait_for("the dialog with the daemon ready", lambda ws: find(ws, "label", prefix="Daemon ready")
                                  and "sensitive" in (find(ws, "button", ("Drag",)) or {"states": []})["states"]
                                  and find(ws, "toggle button", ("Advanced",)),  # the method's form is built
                                  timeout_s=120)
        assert find(widgets, "label", ("Prompt",)) and find(widgets, "label", ("Soft edge",)), \
            [w["name"] for w in widgets if w["role"] == "label"]
        assert "sensitive" not in find(widgets, "button", ("Stop",))["states"]  # nothing to stop yet
        artist.shot("dialog-opened")

        # Advanced shows the other parameters; fine-tuning off keeps the drags short.
        assert not any(find(widgets, "label", (name,)) for name in FINE_TUNING_LABELS)
        artist.click(find(widgets, "toggle button", ("Advanced",)))
        widgets = artist.wait_for("the advanced parameters", lambda ws: any(find(ws, "label", (n,))
                                                                            for n in FINE_TUNING_LABELS), 20)
        label = next(find(widgets, "label", (n,)) for n in FINE_TUNING_LABELS if find(widgets, "label", (n,)))
        artist.type_into(field_beside(widgets, label), "0")
        # The most drag steps at a tiny rate: the points hardly move, so the drag runs all its steps,
        # long enough to be watched and stopped.
        artist.type_into(field_beside(widgets, find(widgets, "label", ("Drag steps",))), "1000")
        rate = next(find(widgets, "label", (n,)) for n in DRAG_RATE_LABELS if find(widgets, "label", (n,)))
        artist.type_into(field_beside(widgets, rate, role="text"), "0.00001")
        widgets = artist.look()
        assert _value(field_beside(widgets, label)) == 0
        assert _value(field_beside(widgets, find(widgets, "label", ("Drag steps",)))) == 1000
        assert field_beside(widgets, rate, role="text")["text"] == "0.00001"
        artist.shot("advanced-parameters-edited")

        # Drag: the progress bar moves and the live preview appears; Drag is greyed out meanwhile.
        artist.click(find(widgets, "button", ("Drag",)))
        widgets = artist.wait_for("progress and a live preview", lambda ws: (_value(find(ws, "progress bar")) or 0) > 0
                                  and any(w["role"] in ("icon", "image") and w["rect"][3] >= 100 for w in ws), 120)
        assert "sensitive" not in find(widgets, "button", ("Drag",))["states"]
        artist.shot("dragging-with-progress-and-preview")

        # Stop: the drag ends, the image keeps its one layer.
        artist.click(find(widgets, "button", ("Stop",)))
        widgets = artist.wait_for("the stopped drag", lambda ws: find(ws, "label", prefix="Cancelled"), 60)
        assert find(widgets, "label", prefix="Cancelled")["name"] == "Cancelled; the image was not changed."
        artist.shot("stopped")

        # Fewer steps: the dialog has the daemon prepare the drag and says when it will start at once; Drag
        # again: a layer is added.
        artist.type_into(field_beside(widgets, find(widgets, "label", ("Drag steps",))), "10")
        label = next(find(widgets, "label", (n,)) for n in FINE_TUNING_LABELS if find(widgets, "label", (n,)))
        artist.type_into(field_beside(widgets, label), "2")  # a fine-tuning for the prepare to make ahead
        widgets = artist.wait_for("the drag prepared", lambda ws: find(ws, "label", (READY,)), 120)
        artist.shot("prepared-ready")
        artist.click(find(widgets, "button", ("Drag",)))
        widgets = artist.wait_for("the result", lambda ws: find(ws, "label", prefix="Added the layer"), 240)
        added = find(widgets, "label", prefix="Added the layer")["name"]
        assert "(fine-tuning and inversion were ready ahead)" in added, added  # the prepared caches were used
        artist.shot("result-layer-added")

        artist.click(find(widgets, "button", ("Close",)))
        gimp.process.wait(timeout=60)
        log = gimp.output()
    assert "dialog closed: success" in log, log
    check_the_image(out, added)


def check_the_image(out: Path, added: str) -> None:
    """One new layer over the source, named as the dialog said, holding only the edited region:
    it changes pixels inside the selection and none beyond its soft edge; the source is untouched."""
    meta = json.loads((out / "layers.json").read_text())
    layers, (sx, sy, sw, sh) = meta["layers"], meta["selection"]
    assert [layer["name"] for layer in layers][1:] == ["photo"] and len(layers) == 2, layers
    result, photo = layers
    assert f"'{result['name']}'" in added
    source = np.frombuffer((out / "source.rgba").read_bytes(), np.uint8).reshape(photo["height"], photo["width"], 4)
    assert (out / photo["file"]).read_bytes() == source.tobytes(), "the source layer changed"
    x, y, w, h = result["x"], result["y"], result["width"], result["height"]
    assert 0 <= x <= sx and 0 <= y <= sy and sx + sw <= x + w <= photo["width"] and sy + sh <= y + h <= photo["height"]
    assert w * h < photo["width"] * photo["height"] / 2, f"the result layer is {w}x{h}: not only the edited region"
    pixels = np.frombuffer((out / result["file"]).read_bytes(), np.uint8).reshape(h, w, 4)
    under = source[y:y + h, x:x + w]
    # What the artist sees: the result layer over the source (alpha-composited).
    alpha = pixels[..., 3:4] / 255.0
    seen = pixels[..., :3] * alpha + under[..., :3] * (1 - alpha)
    changed = np.abs(seen - under[..., :3]).max(axis=-1) > 2
    yy, xx = np.mgrid[y:y + h, x:x + w]
    near = (xx >= sx - SOFT_EDGE_ROOM) & (xx < sx + sw + SOFT_EDGE_ROOM) & (yy >= sy - SOFT_EDGE_ROOM) & \
        (yy < sy + sh + SOFT_EDGE_ROOM)
    inside = (xx >= sx) & (xx < sx + sw) & (yy >= sy) & (yy < sy + sh)
    assert not changed[~near].any(), f"{int(changed[~near].sum())} pixels beyond the selection's soft edge changed"
    assert changed[inside].mean() > 0.1, f"only {changed[inside].mean():.1%} of the selection changed"
