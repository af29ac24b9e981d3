"""Runs inside the real GIMP 3 with its windows (gimp-3.0, python-fu-eval): opens an image with a
selection and a drag path in a window, runs Drag Edit interactively (its dialog stays open until a
person, here the test's xdotool clicks, closes it), then writes what the image holds for the test.

Environment: DRAGEDIT_E2E_OUT, a folder (as seen in the chroot) for layers.json and the layers'
pixels (NAME.rgba, 8-bit RGBA rows); DRAGEDIT_ENDPOINT, the daemon on the host.
"""
import json
import os

from gi.repository import Gegl, Gimp

RGBA = "R'G'B'A u8"
CANVAS = (800, 600)  # big enough that the edited region (the selection and its context) is a part of it
SELECTION = (300, 200, 180, 140)  # x, y, width, height
STROKE = [(360, 270), (400, 276)]  # handle, target (image pixels)


def layer_bytes(layer):
    rect = Gegl.Rectangle.new(0, 0, layer.get_width(), layer.get_height())
    return bytes(layer.get_buffer().get(rect, 1.0, RGBA, Gegl.AbyssPolicy.NONE))


def make_image():
    """A photo-like layer with detail (stripes over a checker of colours), the selection and the path."""
    width, height = CANVAS
    image = Gimp.Image.new(width, height, Gimp.ImageBaseType.RGB)
    layer = Gimp.Layer.new(image, "photo", width, height, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    pixels = bytearray()
    for y in range(height):
        for x in range(width):
            stripe = 40 if (x + y) % 6 < 3 else 0
            cell = (x // 40 + y // 40) % 3
            pixels += bytes((min(255, 60 + 70 * cell + stripe), min(255, 200 - 50 * cell + stripe),
                             min(255, 90 + x * 150 // width), 255))
    buffer = layer.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, width, height), RGBA, bytes(pixels))
    buffer.flush()
    image.select_rectangle(Gimp.ChannelOps.REPLACE, *SELECTION)
    path = Gimp.Path.new(image, "Drag points")
    image.insert_path(path, None, 0)
    coords = [c for point in STROKE for c in (*point, *point, *point)]  # control handles on the anchors
    path.stroke_new_from_points(Gimp.PathStrokeType.BEZIER, coords, False)
    return image, layer


def write_layers(image, out):
    """layers.json (name, offsets, size of each layer, top first) and each layer's pixels."""
    layers = []
    for index, layer in enumerate(image.get_layers()):
        _ok, x, y = layer.get_offsets()
        name = f"layer{index}"
        with open(os.path.join(out, f"{name}.rgba"), "wb") as f:
            f.write(layer_bytes(layer))
        layers.append({"name": layer.get_name(), "file": f"{name}.rgba", "x": x, "y": y,
                       "width": layer.get_width(), "height": layer.get_height()})
    with open(os.path.join(out, "layers.json"), "w") as f:
        json.dump({"layers": layers, "selection": SELECTION, "stroke": STROKE}, f)


out = os.environ["DRAGEDIT_E2E_OUT"]
image, layer = make_image()
with open(os.path.join(out, "source.rgba"), "wb") as f:
    f.write(layer_bytes(layer))
Gimp.Display.new(image)
Gimp.displays_flush()
procedure = Gimp.get_pdb().lookup_procedure("plug-in-dragedit")
config = procedure.create_config()
config.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
config.set_property("image", image)
config.set_core_object_array("drawables", [layer])
values = procedure.run(config)  # returns when the dialog is closed
write_layers(image, out)
print(f"dialog closed: {values.index(0).value_nick}", flush=True)
