"""Runs inside Krita (tests/e2e/test_krita.py): cancel a running drag through the plug-in's actions."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from krita import Krita  # noqa: E402

import dragedit_krita.extension as extension  # noqa: E402
from scene import docker, layer_names, make_document, write_report  # noqa: E402

app = Krita.instance()
controller = extension.shared_controller()
doc, source = make_document(wait_until)
names_before = layer_names(doc)

controller.connect()
wait_until(lambda: controller.session.daemon_state == "ready" and controller.methods, 60, "the daemon's welcome")
controller.reset_params()  # published defaults: a job long enough to cancel midway
controller.set_method("dragdiffusion")
app.action("dragedit_drag").trigger()
assert controller.message == "", controller.message
wait_until(lambda: controller.job is not None and controller.job.status == "running", 120, "the job to report progress")
progress_at_cancel = (controller.job.phase, controller.job.step, controller.job.total)
log(f"cancelling at {progress_at_cancel}")
cancelled_at = time.monotonic()
app.action("dragedit_cancel").trigger()
wait_until(lambda: controller.job.finished, 120, "the job to stop")
took = time.monotonic() - cancelled_at
assert controller.job.status == "cancelled", (controller.job.status, controller.message)
assert controller.message == "Cancelled: the image is unchanged.", controller.message

deadline = time.monotonic() + 3  # nothing may arrive late
wait_until(lambda: time.monotonic() > deadline, 5, "a quiet moment")
assert layer_names(doc) == names_before, layer_names(doc)
assert controller.session.daemon_state == "ready", controller.daemon_text

# the point-pair actions, and a problem shown as a sentence in the docker (no traceback dialog)
app.action("dragedit_clear_pairs").trigger()
assert controller.pair_lines() == [], controller.pair_lines()
app.action("dragedit_drag").trigger()
wait_until(lambda: "has no point pairs" in docker().message.text(), 5, "the docker to explain the problem")
error_shown = docker().message.text()
assert layer_names(doc) == names_before
app.action("dragedit_add_pair").trigger()
lines = controller.pair_lines()
assert len(lines) == 1 and "\u2192" in lines[0], lines
pair_svg = next(n for n in doc.rootNode().childNodes() if n.name() == "Drag points").shapes()[0].toSvg()
assert "marker-start" in pair_svg and "marker-end" in pair_svg, pair_svg
write_report({"progress_at_cancel": progress_at_cancel, "cancel_took_s": round(took, 2),
              "error_shown": error_shown, "added_pair": lines[0]})
