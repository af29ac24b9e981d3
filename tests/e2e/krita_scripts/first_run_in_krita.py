"""Runs inside Krita (tests/e2e/test_krita.py): the first run on a machine without the daemon's model.

The daemon was started on Stable Diffusion 1.5 with no network: the docker must say so in a
sentence, name the log, refuse to drag with the missing model, and drag once the artist picks
the demo model in the Model list, with pointer clicks and keys through the X server.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from krita import Krita  # noqa: E402
from PyQt5.QtWidgets import QApplication, QWidget  # noqa: E402

import dragedit_krita.extension as extension  # noqa: E402
from clicks import click, key, screenshot, settle, type_into  # noqa: E402
from scene import docker, layer_names, make_document, write_report  # noqa: E402

app = Krita.instance()
controller = extension.shared_controller()
app.activeWindow().qwindow().setGeometry(QApplication.primaryScreen().availableGeometry())
doc, source = make_document(wait_until, reopen=True)
names_before = layer_names(doc)
dock = docker()
dock.show()
dock.raise_()
controller.set_model("")  # the daemon's own model, as on a fresh install
wait_until(lambda: "is not on this machine" in dock.daemon.text(), 120, "the docker to say the model is missing")
settle(0.5)
shots = [screenshot("model-missing")]
missing_text = dock.daemon.text()
log("daemon text: " + ascii(missing_text))
assert dock.method.count() > 0, "the methods must be listed although the model is missing"

click(dock.drag_button)
wait_until(lambda: "model is not on this machine" in dock.message.text(), 5, "Drag to explain why it cannot start")
refused_text = dock.message.text()
assert controller.job is None, "a drag was sent for a model that is not there"

models = [dock.model.itemData(i) for i in range(dock.model.count())]
steps = models.index("toy") - dock.model.currentIndex()
click(dock.model)
key(*(["Down"] * steps), "Return")
wait_until(lambda: controller.settings.model == "toy", 5, "the demo model to be chosen")
shots.append(screenshot("demo-model-chosen"))


def param(name):
    return dock.findChild(QWidget, "param-" + name)


click(dock.advanced_toggle)
type_into(param("lora_steps"), "1")
type_into(param("drag_steps"), "4")
type_into(param("inversion_strength"), "0.1")
click(dock.advanced_toggle)
click(dock.drag_button)
wait_until(lambda: controller.job is not None and controller.job.finished, 300, "the drag with the demo model")
assert controller.job.status == "done", (controller.job.status, dock.message.text())
wait_until(lambda: len(layer_names(doc)) == len(names_before) + 1, 10, "the result layer")
wait_until(lambda: "Daemon ready" in dock.daemon.text(), 10, "the daemon to report the model it loaded")
settle(0.5)
shots.append(screenshot("demo-model-result"))
write_report({"missing_text": missing_text, "refused_text": refused_text, "ready_text": dock.daemon.text(),
              "layer": layer_names(doc)[layer_names(doc).index("source") + 1], "shots": [s for s in shots if s]})
