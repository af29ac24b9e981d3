"""Runs inside Krita (tests/e2e/test_krita.py): every control of the Drag Edit docker, used the way an
artist uses it: pointer clicks and key presses through the X server (see clicks.py), never a Python
call into the plug-in. Screenshots of each key moment go to $DRAGEDIT_E2E_SHOTS. Before the first
Drag it waits for the docker's "Ready" line (the prepare ahead) and reports the drag's cache hits.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from krita import Krita  # noqa: E402
from qt_compat import QApplication, QWidget  # noqa: E402

import dragedit_krita.extension as extension  # noqa: E402  (the plug-in as install.py installed it)
from clicks import choose, click, key, screenshot, settle, type_into, xdotool  # noqa: E402
from scene import H, W, SELECTED, docker, layer_names, make_document, write_report  # noqa: E402

REACT_S = 15  # how long a click or key may take to show its effect on a loaded machine (a wait ends when it does)
app = Krita.instance()
controller = extension.shared_controller()
window = app.activeWindow().qwindow()
window.setGeometry(QApplication.primaryScreen().availableGeometry())  # the artist's maximised window
doc, source = make_document(wait_until, reopen=True)
names_before = layer_names(doc)
source_before = bytes(source.pixelData(0, 0, W, H))
dock = docker()
dock.show()
dock.raise_()
wait_until(lambda: "Daemon ready" in dock.daemon.text(), 90, "the docker to show the daemon ready")
settle(0.5)
shots = [screenshot("docker-ready")]
report = {"clicked": []}


def no_problem_shown(after: str) -> None:
    text = dock.message.text()
    assert "unexpected problem" not in text, f"after {after}: the docker shows '{text}'"
    report["clicked"].append(after)


def param(name: str) -> QWidget:
    """The parameter's field on screen (a rebuilt form shows its new fields a moment later)."""
    return wait_until(lambda: next((w for w in dock.findChildren(QWidget, "param-" + name) if w.isVisible()), None),
                      10, f"the field of parameter {name}")


def type_param(name: str, text: str, holds) -> None:
    """Type ``text`` into the parameter's field until the plug-in's value ``holds``. A form rebuilt by a
    late tick (the method or document just changed) replaces the field typed into; the artist, seeing
    the old value, types again."""
    for attempt in range(3):
        try:
            type_into(param(name), text)
            wait_until(lambda: holds(controller.params.value(controller.current_method(), name)), REACT_S,
                       f"typing {text} to set {name}")
            return
        except (TimeoutError, RuntimeError):  # RuntimeError: the field was deleted while typed into
            if attempt == 2:
                screenshot("typing-lost")
                focus = QApplication.focusWidget()
                raise AssertionError(f"typing {text} into {name} did not take: the field shows "
                                     f"'{param(name).text()}', the focus is on {focus and focus.objectName()!r} "
                                     f"({type(focus).__name__}), popup {QApplication.activePopupWidget()!r}, "
                                     f"modal {QApplication.activeModalWidget()!r}")


def pairs_shown() -> list:
    return [dock.pairs.item(i).text() for i in range(dock.pairs.count())]


# The docker has room for its controls: Krita gives it the height it asks for.
assert dock.height() >= 300, f"the docker is squeezed to {dock.height()} px"
log(f"docker geometry {dock.geometry()}")

# Advanced: shows the advanced parameters, seed and prompt.
click(dock.advanced_toggle)
wait_until(dock.advanced_box.isVisible, REACT_S, "Advanced to open")
no_problem_shown("Advanced")

# Method choice with the pointer: open the list, click GoodDrag (then DragDiffusion again).
titles = [dock.method.itemText(i) for i in range(dock.method.count())]
assert "GoodDrag" in titles and "DragDiffusion" in titles, titles


def choose_method(title: str) -> None:
    choose(dock.method, titles.index(title))
    wait_until(lambda: dock.method.currentText() == title, REACT_S, f"the method list to show {title}")
    no_problem_shown(f"method {title}")


choose_method("GoodDrag")
assert controller.current_method().name == "gooddrag", controller.params.method
choose_method("DragDiffusion")
assert controller.current_method().name == "dragdiffusion", controller.params.method

# Model: the daemon's own (the tiny test model; an earlier run may have left the demo model chosen).
choose(dock.model, [dock.model.itemData(i) for i in range(dock.model.count())].index(""))
wait_until(lambda: controller.settings.model == "", REACT_S, "the daemon's model to be chosen")
no_problem_shown("model the daemon's own")

# A parameter typed in, then Reset to defaults.
default_steps = controller.current_method().param("drag_steps").default
type_param("drag_steps", "7", lambda v: v == 7)
no_problem_shown("parameter edit")
shots.append(screenshot("advanced-open"))
click(dock.reset_button)
wait_until(lambda: param("drag_steps").value() == default_steps, REACT_S, "Reset to show the default again")
assert controller.params.value(controller.current_method(), "drag_steps") == default_steps
no_problem_shown("Reset to defaults")

# Short settings for the tiny CPU model, typed as an artist would.
type_param("lora_steps", "1", lambda v: v == 1)
type_param("drag_steps", "4", lambda v: v == 4)
type_param("inversion_strength", "0.1", lambda v: abs(v - 0.1) < 1e-9)
type_into(dock.seed, "1234")
method = controller.current_method()
wait_until(lambda: controller.params.seed == 1234, REACT_S, "the typed seed")
assert (controller.params.value(method, "lora_steps"), controller.params.value(method, "drag_steps")) == (1, 4)
assert abs(controller.params.value(method, "inversion_strength") - 0.1) < 1e-9
click(dock.advanced_toggle)
wait_until(lambda: not dock.advanced_box.isVisible(), REACT_S, "Advanced to close")

# Live preview off and on again.
was = dock.live_preview.isChecked()
click(dock.live_preview)
wait_until(lambda: controller.settings.live_preview is (not was), REACT_S, "Live preview to switch")
key("space")  # the box has the keyboard focus now: the space bar toggles it back
wait_until(lambda: controller.settings.live_preview is was, REACT_S, "Live preview to switch back")
no_problem_shown("Live preview")
if not dock.live_preview.isChecked():
    click(dock.live_preview)

# Point pairs: Add (inside the selection, numbered after the others), pick it in the list, Remove.
wait_until(lambda: len(pairs_shown()) == 2, REACT_S, "the two drawn pairs in the list")
click(dock.add_pair_button)
wait_until(lambda: len(pairs_shown()) == 3, REACT_S, "the added pair in the list")
added = pairs_shown()[2]
log("added: " + ascii(added))
assert added.startswith("3: "), added
hx, hy = (float(v) for v in added.split("(")[1].split(")")[0].split(","))
sx, sy, sw, sh = SELECTED
assert sx <= hx <= sx + sw and sy <= hy <= sy + sh, f"the new pair's handle {hx, hy} is outside the selection {SELECTED}"
no_problem_shown("Add point pair")
shots.append(screenshot("pair-added"))
item = dock.pairs.item(2)
rect = dock.pairs.visualItemRect(item)
point = dock.pairs.viewport().mapToGlobal(rect.center())
xdotool("mousemove", "--sync", str(point.x()), str(point.y()), "click", "1")
wait_until(lambda: dock.pairs.currentRow() == 2, REACT_S, "the third pair to be picked in the list")
click(dock.remove_button)
wait_until(lambda: len(pairs_shown()) == 2, REACT_S, "Remove to take the pair away")
no_problem_shown("Remove")

# Prepared ahead: with the selection, the pairs and the settings still, the docker has the daemon
# fine-tune on the region and invert it before Drag is clicked, and says when the drag will start at once.
try:
    wait_until(lambda: dock.readiness.text().startswith("Ready"), 180, "the docker to say the drag is ready")
except TimeoutError:
    screenshot("prepare-stuck")
    raise AssertionError(f"not ready: '{dock.readiness.text()}', daemon '{dock.daemon.text()}'")
report["ready_text"] = dock.readiness.text()
shots.append(screenshot("prepared-ready"))

# Drag: progress, live preview, the result layer.
click(dock.drag_button)
no_problem_shown("Drag")
try:
    wait_until(lambda: controller.job is not None and (controller.job.finished or (
        controller.job.status == "running" and dock.progress.value() > 0)), 120, "the progress bar to move")
except TimeoutError:
    screenshot("drag-stuck")
    raise AssertionError(f"no progress: job {controller.job and controller.job.status}, status "
                         f"'{dock.status.text()}', message '{dock.message.text()}', daemon '{dock.daemon.text()}'")
assert controller.job.status in ("running", "done"), (controller.job.status, dock.message.text(), dock.status.text())
wait_until(lambda: dock.preview.pixmap() is not None and not dock.preview.pixmap().isNull() or controller.job.finished,
           120, "the live preview")
shots.append(screenshot("dragging"))
report["status_while_running"] = dock.status.text()
wait_until(lambda: controller.job.finished, 280, "the drag to finish")
assert controller.job.status == "done", (controller.job.status, dock.message.text())
wait_until(lambda: len(layer_names(doc)) == len(names_before) + 1, 10, "the result layer")
settle(1.0)
shots.append(screenshot("result"))
names = layer_names(doc)
result = doc.rootNode().childNodes()[names.index("source") + 1]
report["layer"] = result.name()
report["cache_hits"] = controller.job.result.get("cache_hits")
report["message_after_drag"] = dock.message.text()
assert result.name() in dock.message.text(), dock.message.text()
out = bytes(result.pixelData(0, 0, W, H))
selected = bytes(doc.selection().pixelData(0, 0, W, H))
soft = controller.settings.soft_edge


def far_outside(x: int, y: int) -> bool:  # outside the selection by more than the soft edge
    return not (sx - soft <= x < sx + sw + soft and sy - soft <= y < sy + sh + soft)


def pixel(data: bytes, i: int) -> bytes:
    return data[4 * i:4 * i + 4]


inside_changed = sum(1 for i in range(W * H) if selected[i] and pixel(out, i) != pixel(source_before, i))
outside_changed = sum(1 for i in range(W * H) if far_outside(i % W, i // W) and pixel(out, i)[3] != 0
                      and pixel(out, i) != pixel(source_before, i))
report["inside_changed"], report["outside_changed"] = inside_changed, outside_changed
assert inside_changed > 0, "the drag changed nothing inside the selection"
assert outside_changed == 0, f"{outside_changed} pixels outside the selection changed"
assert bytes(source.pixelData(0, 0, W, H)) == source_before, "the source layer changed"
no_problem_shown("the finished drag")

# Drag again with the published defaults and a long fine-tuning (not prepared ahead: the drag starts
# it), then Cancel while it runs.
click(dock.advanced_toggle)
wait_until(dock.advanced_box.isVisible, REACT_S, "Advanced to open again")
click(dock.reset_button)
wait_until(lambda: controller.params.value(controller.current_method(), "drag_steps") == default_steps, REACT_S,
           "Reset to bring back the default drag")
type_param("lora_steps", "2000", lambda v: v == 2000)
click(dock.drag_button)
wait_until(lambda: controller.job is not None and controller.job.status == "running", 120, "the second drag to run")
report["status_before_cancel"] = dock.status.text()
shots.append(screenshot("before-cancel"))
click(dock.cancel_button)
wait_until(lambda: controller.job.finished, 120, "Cancel to stop the drag")
assert controller.job.status == "cancelled", controller.job.status
assert "Cancelled" in dock.message.text(), dock.message.text()
no_problem_shown("Cancel")
type_param("lora_steps", "1", lambda v: v == 1)  # its prepare supersedes the long one, which stops
click(dock.advanced_toggle)
wait_until(lambda: not dock.advanced_box.isVisible(), REACT_S, "Advanced to close")
deadline = time.monotonic() + 2
wait_until(lambda: time.monotonic() > deadline, REACT_S, "a quiet moment")
assert len(layer_names(doc)) == len(names_before) + 1, "the cancelled drag added a layer"

# Clear, then Drag: the docker says what is missing, in a sentence.
click(dock.clear_button)
wait_until(lambda: pairs_shown() == [], REACT_S, "Clear to empty the list")
no_problem_shown("Clear")
assert dock.status.text() == "" and dock.progress.value() == 0, "stale status after Clear"
click(dock.drag_button)
wait_until(lambda: "has no point pairs" in dock.message.text(), REACT_S, "the docker to explain the problem")
no_problem_shown("Drag without pairs")
shots.append(screenshot("no-pairs"))
report["error_shown"] = dock.message.text()
report["shots"] = [s for s in shots if s]
write_report(report)
