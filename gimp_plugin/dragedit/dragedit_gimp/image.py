"""Read a drag from a GIMP image (layer pixels, selection, path strokes) and add the result layer."""
from __future__ import annotations

from dataclasses import dataclass

from gi.repository import Gegl, Gimp

from dragedit_protocol.editor.drag import DragPlan, compose_result, plan_drag
from dragedit_protocol.editor.errors import UserError
from dragedit_protocol.editor.geometry import Point, Rect, pairs_from_strokes
from dragedit_protocol.editor.pixels import selection_mask

DRAG_PATH_NAME = "Drag points"
RGBA_FORMAT = "R'G'B'A u8"
MASK_FORMAT = "Y u8"
PATH_HINT = (f"draw the drag points with the Paths tool in a path named '{DRAG_PATH_NAME}' (or select a path): "
             "each stroke goes from a handle (first point) to its target (last point)")


@dataclass
class DragSource:
    """What one drag reads from the image: the source layer, its pixels then, and the plan sent."""

    image: Gimp.Image
    layer: Gimp.Layer
    rgba: bytes
    plan: DragPlan
    path_name: str


def check_image(image: Gimp.Image) -> None:
    """Only RGB images can be dragged; UserError naming the mode otherwise."""
    base = image.get_base_type()
    if base == Gimp.ImageBaseType.RGB:
        return
    mode = {Gimp.ImageBaseType.GRAY: "grayscale", Gimp.ImageBaseType.INDEXED: "indexed"}.get(base, "not RGB")
    raise UserError(f"The image is {mode}; Drag Edit works on RGB images",
                    "convert it with Image > Mode > RGB, then run Drag Edit again")


def source_layer(drawables: list) -> Gimp.Layer:
    """The one selected paint layer; UserError for none, several, a channel, a mask or a group."""
    if len(drawables) != 1:
        raise UserError(f"{len(drawables)} layers are selected; Drag Edit works on one layer",
                        "select only the layer to edit in the Layers dock")
    layer = drawables[0]
    if not isinstance(layer, Gimp.Layer):
        raise UserError("The selected item is not a layer (a channel or a layer mask is selected)",
                        "click the layer's thumbnail in the Layers dock, then run Drag Edit again")
    if layer.is_group():
        raise UserError("The selected layer is a layer group",
                        "select a paint layer inside the group (or merge the group first)")
    return layer


def find_path(image: Gimp.Image, name: str = "") -> Gimp.Path:
    """The path named ``name``; without a name, 'Drag points' or else the selected path."""
    paths = image.get_paths()
    wanted = name or DRAG_PATH_NAME
    for path in paths:
        if path.get_name() == wanted:
            return path
    if name:
        known = ", ".join(f"'{p.get_name()}'" for p in paths) or "none"
        raise UserError(f"The image has no path named '{name}' (its paths: {known})",
                        "give the name of an existing path, or leave it empty to use 'Drag points'")
    selected = image.get_selected_paths()
    if len(selected) == 1:
        return selected[0]
    if selected:
        raise UserError(f"{len(selected)} paths are selected and none is named '{DRAG_PATH_NAME}'",
                        f"select only the path with the drag points, or name it '{DRAG_PATH_NAME}'")
    raise UserError("The image has no drag points", PATH_HINT)


def path_strokes(path: Gimp.Path) -> list[list[Point]]:
    """Each stroke's anchor points in image coordinates (control handles left out)."""
    strokes = []
    for stroke_id in path.get_strokes():
        _kind, coords, _closed = path.stroke_get_points(stroke_id)
        # Bezier strokes are triplets (control in, anchor, control out) of x, y pairs.
        strokes.append([(float(coords[i + 2]), float(coords[i + 3])) for i in range(0, len(coords) - 5, 6)])
    return strokes


def layer_rect(layer: Gimp.Layer) -> Rect:
    """The layer's rectangle in image coordinates."""
    _ok, x, y = layer.get_offsets()
    return Rect(x, y, layer.get_width(), layer.get_height())


def read_pixels(layer: Gimp.Layer) -> bytes:
    """The layer's pixels as 8-bit RGBA (opaque alpha for a layer without one)."""
    rect = Gegl.Rectangle.new(0, 0, layer.get_width(), layer.get_height())
    return bytes(layer.get_buffer().get(rect, 1.0, RGBA_FORMAT, Gegl.AbyssPolicy.NONE))


def read_mask(image: Gimp.Image, rect: Rect, soft_edge_px: int = 0) -> bytes | None:
    """The selection over the layer as one byte per pixel, its edge softened inwards over
    ``soft_edge_px``; None without a selection."""
    if Gimp.Selection.is_empty(image):
        return None
    area = Gegl.Rectangle.new(rect.x, rect.y, rect.width, rect.height)
    data = bytes(image.get_selection().get_buffer().get(area, 1.0, MASK_FORMAT, Gegl.AbyssPolicy.NONE))
    if soft_edge_px > 0 and data.strip(b"\xff"):
        data = soften(data, rect.width, rect.height, soft_edge_px)
    return selection_mask(data, rect.width, rect.height)


def soften(mask: bytes, width: int, height: int, radius: int) -> bytes:
    """The mask's edge softened inwards over ``radius`` pixels, as Krita's plug-in does: shrunk by the
    radius, then feathered by as much with GIMP's own Shrink and Feather, so the fade ends at the
    selection's edge and the outside stays the source's. Done on a scratch image: the artist's
    selection and undo history stay as they are."""
    scratch = Gimp.Image.new(width, height, Gimp.ImageBaseType.GRAY)
    try:
        scratch.undo_disable()
        channel = Gimp.Channel.new(scratch, "mask", width, height, 100.0, Gegl.Color.new("black"))
        scratch.insert_channel(channel, None, 0)
        whole = Gegl.Rectangle.new(0, 0, width, height)
        buffer = channel.get_buffer()
        buffer.set(whole, MASK_FORMAT, mask)
        buffer.flush()
        scratch.select_item(Gimp.ChannelOps.REPLACE, channel)
        Gimp.Selection.shrink(scratch, radius)
        Gimp.Selection.feather(scratch, float(radius))
        return bytes(scratch.get_selection().get_buffer().get(whole, 1.0, MASK_FORMAT, Gegl.AbyssPolicy.NONE))
    finally:
        scratch.delete()


def read_drag(image: Gimp.Image, drawables: list, path_name: str = "", soft_edge_px: int = 0) -> DragSource:
    """Everything one drag needs, checked; UserError (image untouched) when something is missing.

    ``soft_edge_px``: the selection's edge is softened over this width (see ``read_mask``)."""
    if not image.is_valid():
        raise UserError("The image was closed", "open it again and run Drag Edit from it")
    check_image(image)
    layer = source_layer(drawables)
    path = find_path(image, path_name)
    strokes = path_strokes(path)
    if not strokes:
        raise UserError(f"The path '{path.get_name()}' has no strokes", PATH_HINT)
    pairs = pairs_from_strokes(strokes)
    rect = layer_rect(layer)
    mask = read_mask(image, rect, soft_edge_px)
    rgba = read_pixels(layer)
    try:
        plan = plan_drag(rgba, rect, pairs, mask)
    except UserError as err:
        raise UserError(f"{err.message} (path '{path.get_name()}', layer '{layer.get_name()}')", err.hint)
    return DragSource(image, layer, rgba, plan, path.get_name())


def insert_result(source: DragSource, result_image: dict, name: str) -> Gimp.Layer:
    """Add the edited pixels as a new layer just above the source, as one undo step."""
    image = source.image
    if not image.is_valid():
        raise UserError("The image was closed while the drag ran", "open it again and drag again")
    rect, rgba = compose_result(source.plan, source.rgba, result_image)  # only the edited region
    layer = Gimp.Layer.new(image, name, rect.width, rect.height, Gimp.ImageType.RGBA_IMAGE, 100.0,
                           Gimp.LayerMode.NORMAL)
    image.undo_group_start()
    try:
        if source.layer.is_valid():
            image.insert_layer(layer, source.layer.get_parent(), image.get_item_position(source.layer))
        else:  # the source was deleted meanwhile: put the result on top
            image.insert_layer(layer, None, 0)
        layer.set_offsets(rect.x, rect.y)
        buffer = layer.get_buffer()
        buffer.set(Gegl.Rectangle.new(0, 0, rect.width, rect.height), RGBA_FORMAT, rgba)
        buffer.flush()
        layer.update(0, 0, rect.width, rect.height)
    finally:
        image.undo_group_end()
    return layer
