"""Runs inside Krita (tests/e2e/test_krita.py): a full drag through the installed plug-in.

Triggers the plug-in's drag action on a document with a paint layer, a selection and two
arrows, waits for the result layer and checks it; raises on any failure.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from krita import Krita  # noqa: E402

import dragedit_krita.extension as extension  # noqa: E402  (the plug-in as install.py installed it)
from scene import ARROWS, H, W, docker, layer_names, make_document, write_report  # noqa: E402

log("plug-in: " + extension.__file__)
app = Krita.instance()
controller = extension.shared_controller()
doc, source = make_document(wait_until)
names_before = layer_names(doc)
source_before = bytes(source.pixelData(0, 0, W, H))
selected = bytes(doc.selection().pixelData(0, 0, W, H))

controller.connect()
wait_until(lambda: controller.session.daemon_state == "ready" and controller.methods, 60, "the daemon's welcome")
log("daemon: " + controller.daemon_text)
dock = docker()
wait_until(lambda: dock.method.count() > 0, 10, "the docker's method list")
titles = [dock.method.itemText(i) for i in range(dock.method.count())]
assert "DragDiffusion" in titles, titles
assert "Daemon ready" in dock.daemon.text(), dock.daemon.text()
# short settings for the tiny CPU model, through the calls the docker's widgets make
controller.reset_params()
controller.set_method("dragdiffusion")
controller.set_param("lora_steps", 1)
controller.set_param("drag_steps", 4)
controller.set_param("inversion_strength", 0.1)
controller.set_seed("1234")
assert controller.message == "", controller.message

seen = []


def record():
    job = controller.job
    if job is not None:
        if not seen or seen[-1][5] != dock.status.text():
            log(f"{job.status}: {dock.status.text()} {controller.message}")
        pixmap = dock.preview.pixmap()
        seen.append((job.status, job.phase, job.step, job.total, dock.progress.value(), dock.status.text(),
                     pixmap is not None and not pixmap.isNull()))


controller.listen(record)
app.action("dragedit_drag").trigger()
assert controller.message == "", controller.message
wait_until(lambda: controller.job is not None and controller.job.finished, 280, "the drag to finish")
assert controller.job.status == "done", (controller.job.status, controller.message)
log("finished: " + controller.message)

wait_until(lambda: len(layer_names(doc)) == len(names_before) + 1, 10, "the result layer")
names = layer_names(doc)
nodes = doc.rootNode().childNodes()
result = nodes[names.index("source") + 1]
assert result.name() == "DragDiffusion drag (seed 1234; Drag steps 4, Strength 0.1, Fine-tuning steps 1)", names
assert result.type() == "paintlayer"
bounds = result.bounds()
assert (bounds.x(), bounds.y(), bounds.width(), bounds.height()) == (0, 0, W, H), bounds
out = bytes(result.pixelData(0, 0, W, H))
inside_changed = sum(1 for i in range(W * H) if selected[i] and out[4 * i:4 * i + 4] != source_before[4 * i:4 * i + 4])
outside_changed = sum(1 for i in range(W * H) if not selected[i] and out[4 * i:4 * i + 4] != source_before[4 * i:4 * i + 4])
log(f"pixels changed inside the selection: {inside_changed}, outside: {outside_changed}")
assert inside_changed > 0, "the drag changed nothing inside the selection"
assert outside_changed == 0, f"{outside_changed} pixels outside the selection changed"
assert bytes(source.pixelData(0, 0, W, H)) == source_before, "the source layer changed"

running = [s for s in seen if s[0] == "running" and s[3] > 0]
assert running, f"no progress was reported: {seen[:10]}"
assert any(s[4] > 0 for s in running), "the docker's progress bar never moved"
assert {s[1] for s in running} >= {"drag"}, {s[1] for s in running}
assert any(s[6] for s in running), "the docker never showed a live preview"
points = next(n for n in nodes if n.name() == "Drag points")
assert len(points.shapes()) == len(ARROWS), "the points were not kept"
wait_until(lambda: doc.activeNode() is not None and doc.activeNode().name() == "source", 5, "the source to be active again")

app.action("edit_undo").trigger()
wait_until(lambda: layer_names(doc) == names_before, 10, "one undo to remove the result layer")
# points and parameters persist in the document: save it as .kra and open it again
saved = os.path.join(os.path.dirname(os.environ["DRAGEDIT_E2E_REPORT"]), "dragged.kra")
doc.setBatchmode(True)
assert doc.saveAs(saved), "saving the .kra failed"
reopened = app.openDocument(saved)
settings = json.loads(bytes(reopened.annotation("dragedit")).decode())
assert settings["method"] == "dragdiffusion" and settings["seed"] == 1234, settings
assert settings["values"]["dragdiffusion"] == {"lora_steps": 1, "drag_steps": 4, "inversion_strength": 0.1}, settings
points_again = [n for n in reopened.rootNode().childNodes() if n.name() == "Drag points"]
assert points_again and len(points_again[0].shapes()) == len(ARROWS), "the points layer did not survive saving"
write_report({"layer": result.name(), "inside_changed": inside_changed, "phases": sorted({s[1] for s in running}),
              "progress_messages": len(running), "status_lines": sorted({s[5] for s in running})[:20]})
