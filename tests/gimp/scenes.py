"""Fake GIMP images for the plug-in's tests: a patterned layer, a selection and a drag path."""
from __future__ import annotations

import fake_gimp

WIDTH, HEIGHT = 64, 48


def pattern(width: int, height: int) -> bytes:
    """Mid-tone pixels that differ from one another (so crops and offsets show in the bytes)."""
    return bytes(v for i in range(width * height) for v in (60 + i % 97, 90 + (i // width) % 80, 120, 255))


def scene(width: int = WIDTH, height: int = HEIGHT, offsets: tuple[int, int] = (0, 0),
          strokes: tuple = (((10, 12), (20, 14)), ((30, 30), (26, 36))), selection: tuple | None = (4, 4, 36, 36),
          path_name: str = "Drag points", base_type: int = fake_gimp.ImageBaseType.RGB):
    """(image, layer): one layer at ``offsets``, a rectangle selection, a path of ``strokes``."""
    image = fake_gimp.Image(WIDTH + 16, HEIGHT + 16, base_type)
    layer = fake_gimp.Layer(image, "photo", width, height)
    layer.pixels[:] = pattern(width, height)
    layer.set_offsets(*offsets)
    image.insert_layer(layer, None, 0)
    image.selected_drawables = [layer]
    if selection is not None:
        image.select_rectangle(fake_gimp.ChannelOps.REPLACE, *selection)
    if strokes is not None:
        path = fake_gimp.Path(image, path_name)
        for anchors in strokes:
            path.add_line(*anchors)
        image.insert_path(path, None, 0)
    return image, layer


def pixel(layer: fake_gimp.Layer, x: int, y: int) -> bytes:
    """The RGBA bytes of a layer pixel (layer coordinates)."""
    i = (y * layer.width + x) * 4
    return bytes(layer.pixels[i:i + 4])
