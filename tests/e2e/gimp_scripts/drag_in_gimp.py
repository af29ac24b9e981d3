"""Runs inside real GIMP 3 (gimp-console, python-fu-eval): calls the installed DragEdit procedure
non-interactively and checks what it did to the image. Raising fails the test (exit status 64).

Environment: DRAGEDIT_ENDPOINT (the daemon on the host, inherited by the plug-in),
DRAGEDIT_E2E_METHOD and DRAGEDIT_E2E_PARAMS (JSON) for the drag; DRAGEDIT_E2E_EXPECT_ERROR: the
drag must instead fail with a message containing this text (e.g. when no daemon answers).
With DISPLAY and DRAGEDIT_E2E_PLUGIN_DIR (the installed plug-in folder) set, the Drag Edit
dialog (real GimpUi / Gtk widgets) then runs a second drag in this process, pressed by a script.
"""
import json
import os
import sys
import time

from gi.repository import Gegl, Gimp

PROCEDURE = "plug-in-dragedit"
RGBA = "R'G'B'A u8"
CANVAS = (112, 88)
LAYER = (8, 4, 96, 80)          # x, y, width, height of the source layer in the image
SELECTION = (32, 24, 48, 40)    # x, y, width, height in image coordinates
STROKES = [[(44, 40), (52, 44)], [(64, 52), (60, 44), (58, 40)]]  # image coordinates; the 2nd has 3 anchors


def layer_bytes(layer):
    rect = Gegl.Rectangle.new(0, 0, layer.get_width(), layer.get_height())
    return bytes(layer.get_buffer().get(rect, 1.0, RGBA, Gegl.AbyssPolicy.NONE))


def make_image(strokes, base_type=Gimp.ImageBaseType.RGB):
    """An image with a patterned layer at LAYER, the SELECTION and a 'Drag points' path of strokes."""
    image = Gimp.Image.new(CANVAS[0], CANVAS[1], base_type)
    x, y, w, h = LAYER
    kind = Gimp.ImageType.RGBA_IMAGE if base_type == Gimp.ImageBaseType.RGB else Gimp.ImageType.GRAYA_IMAGE
    layer = Gimp.Layer.new(image, "photo", w, h, kind, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    layer.set_offsets(x, y)
    if base_type == Gimp.ImageBaseType.RGB:
        data = bytes(v for j in range(h) for i in range(w)
                     for v in ((i * 5) % 256, (j * 3) % 256, 255 if (i // 12 + j // 12) % 2 else 40, 255))
        buffer = layer.get_buffer()
        buffer.set(Gegl.Rectangle.new(0, 0, w, h), RGBA, data)
        buffer.flush()
    image.select_rectangle(Gimp.ChannelOps.REPLACE, *SELECTION)
    path = Gimp.Path.new(image, "Drag points")
    image.insert_path(path, None, 0)
    for anchors in strokes:
        coords = [c for point in anchors for c in (*point, *point, *point)]  # control handles on the anchors
        path.stroke_new_from_points(Gimp.PathStrokeType.BEZIER, coords, False)
    return image, layer


def run_drag(image, layer, **arguments):
    """The procedure's return values: (status, message or '')."""
    procedure = Gimp.get_pdb().lookup_procedure(PROCEDURE)
    assert procedure is not None, "the DragEdit procedure is not registered (plug-in not installed or broken)"
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    for name, value in arguments.items():
        config.set_property(name, value)
    values = procedure.run(config)
    return values.index(0), (values.index(1) if values.length() > 1 else "")


def layer_names(image):
    return [layer.get_name() for layer in image.get_layers()]


def check_drag(image, layer, before, status, message, elapsed):
    """A new layer above the source holding only the edited region (inside the source layer, over the
    selection): changed inside the selection, the source's pixels outside it; source untouched."""
    assert status == Gimp.PDBStatusType.SUCCESS, (status, message)
    names = layer_names(image)
    assert len(names) == 2 and names[1] == "photo" and names[0].endswith("drag (seed 3)"), names
    new = image.get_layers()[0]
    _ok, nx, ny = new.get_offsets()
    nw, nh = new.get_width(), new.get_height()
    lx, ly, lw, lh = LAYER
    sx, sy, sw, sh = SELECTION
    assert lx <= nx <= sx and ly <= ny <= sy and sx + sw <= nx + nw <= lx + lw and sy + sh <= ny + nh <= ly + lh, \
        ((nx, ny, nw, nh), LAYER, SELECTION)
    assert layer_bytes(layer) == before, "the source layer changed"
    after = layer_bytes(new)
    inside_changed = inside = outside_changed = 0
    for j in range(nh):
        for i in range(nw):
            k = (j * nw + i) * 4
            s = ((ny + j - ly) * lw + nx + i - lx) * 4
            changed = after[k:k + 4] != before[s:s + 4]
            if sx <= nx + i < sx + sw and sy <= ny + j < sy + sh:
                inside += 1
                inside_changed += changed
            else:
                outside_changed += changed
    assert outside_changed == 0, f"{outside_changed} pixels outside the selection changed"
    assert inside_changed > inside // 10, f"only {inside_changed} of {inside} selected pixels changed"
    print(f"drag: layer '{names[0]}' ({nw}x{nh} at {nx},{ny}) in {elapsed:.1f} s; "
          f"{inside_changed}/{inside} selected pixels changed, none outside")


# 0. GIMP's own Python has no pyzmq: a drag that reaches the daemon used the plug-in's vendored copy.
try:
    import zmq  # noqa: F401
except ImportError:
    pass
else:
    raise AssertionError("GIMP's Python has its own pyzmq; the test cannot tell the vendored copy loads")

# The procedure is where the README says, for every image type (others get a clear error).
procedure = Gimp.get_pdb().lookup_procedure(PROCEDURE)
assert procedure is not None, "the DragEdit procedure is not registered (plug-in not installed or broken)"
assert list(procedure.get_menu_paths()) == ["<Image>/Filters/Distorts"], procedure.get_menu_paths()
assert procedure.get_menu_label() == "_Drag Edit..." and procedure.get_image_types() == "*"

# 1. A stroke with a single anchor: a clear error, the image as it was.
image, layer = make_image([STROKES[0], [(60, 50)]])
before = layer_bytes(layer)
status, message = run_drag(image, layer)
assert status == Gimp.PDBStatusType.EXECUTION_ERROR, (status, message)
assert message.startswith("Drag stroke 2 has a single point."), message
assert layer_names(image) == ["photo"] and layer_bytes(layer) == before
print("single-anchor stroke:", message)

# 2. A grayscale image: a clear error.
image, layer = make_image(STROKES, Gimp.ImageBaseType.GRAY)
status, message = run_drag(image, layer)
assert status == Gimp.PDBStatusType.EXECUTION_ERROR and "grayscale" in message, (status, message)
assert layer_names(image) == ["photo"]
print("grayscale image:", message)

# 3. The drag, through the daemon on the host.
image, layer = make_image(STROKES)
before = layer_bytes(layer)
started = time.monotonic()
status, message = run_drag(image, layer, method=os.environ.get("DRAGEDIT_E2E_METHOD", ""),
                           params=os.environ.get("DRAGEDIT_E2E_PARAMS", "{}"), seed=3)
elapsed = time.monotonic() - started
expected_error = os.environ.get("DRAGEDIT_E2E_EXPECT_ERROR")
if expected_error:
    assert status == Gimp.PDBStatusType.EXECUTION_ERROR and expected_error in message, (status, message)
    assert layer_names(image) == ["photo"] and layer_bytes(layer) == before
    print(f"drag failed as expected after {elapsed:.1f} s: {message}")
else:
    check_drag(image, layer, before, status, message, elapsed)


class ConfigWithAux:
    """The procedure's config as the PDB shows it, plus the plug-in's own aux argument 'settings'."""

    def __init__(self, config):
        self.config, self.aux = config, {"settings": ""}

    def get_property(self, name):
        return self.aux[name] if name in self.aux else self.config.get_property(name)

    def set_property(self, name, value):
        if name in self.aux:
            self.aux[name] = value
        else:
            self.config.set_property(name, value)


def drag_with_the_dialog(plugin_dir, params, timeout_s=240.0):
    """Open the real dialog, set the parameters, press Drag, wait for the layer, press Close."""
    sys.path[:0] = [os.path.join(plugin_dir, "_vendor"), plugin_dir]
    import gi

    gi.require_version("Gtk", "3.0")
    from gi.repository import GLib, Gtk

    from dragedit_gimp.dialog import DragDialog, GimpUi
    from dragedit_gimp.run import make_session

    GimpUi.init("dragedit-e2e")
    image, layer = make_image(STROKES)
    before = layer_bytes(layer)
    procedure = Gimp.get_pdb().lookup_procedure(PROCEDURE)
    config = ConfigWithAux(procedure.create_config())
    dialog = DragDialog(procedure, config, image, make_session(os.path.join(plugin_dir, "_vendor")))
    started, ticks, events = time.monotonic(), [0], []

    def count_ticks():  # another GLib source: it keeps running only if the main loop stays responsive
        ticks[0] += 1
        return True

    def script():
        if time.monotonic() - started > timeout_s:
            events.append("timed out: " + dialog.status_label.get_text())
            dialog.dialog.response(Gtk.ResponseType.CLOSE)
        elif not events and dialog.form is not None:
            for field in dialog.form.fields:
                if field.spec.name in params:
                    value = params[field.spec.name]
                    if field.spec.type == "int":
                        field.widget.set_value(value)
                    else:
                        field.widget.set_text(str(value))
            events.append(("pressed Drag", ticks[0], time.monotonic()))
            dialog.dialog.response(Gtk.ResponseType.OK)
        elif len(events) == 1 and "Added the layer" in dialog.status_label.get_text():
            events.append(("layer added", ticks[0], time.monotonic()))
            dialog.dialog.response(Gtk.ResponseType.CLOSE)
        return True

    GLib.timeout_add(20, count_ticks)
    GLib.timeout_add(100, script)
    added = dialog.run()
    assert added == 1 and len(events) == 2, (added, events, dialog.status_label.get_text())
    (_, ticks0, t0), (_, ticks1, t1) = events
    rate = (ticks1 - ticks0) / max(t1 - t0, 1e-3)
    assert rate > 10, f"the main loop ran only {rate:.0f} times a second during the drag (50 expected)"
    names = layer_names(image)
    assert len(names) == 2 and names[1] == "photo" and "drag (seed" in names[0], names
    assert layer_bytes(layer) == before, "the source layer changed"
    assert json.loads(config.get_property("params")) == params, config.get_property("params")
    print(f"dialog: layer '{names[0]}' in {t1 - t0:.1f} s, main loop at {rate:.0f} ticks/s during the drag")


if os.environ.get("DISPLAY") and os.environ.get("DRAGEDIT_E2E_PLUGIN_DIR") and not expected_error:
    drag_with_the_dialog(os.environ["DRAGEDIT_E2E_PLUGIN_DIR"], json.loads(os.environ.get("DRAGEDIT_E2E_PARAMS", "{}")))
