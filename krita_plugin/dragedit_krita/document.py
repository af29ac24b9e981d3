"""Everything DragEdit reads from and writes to a Krita document (libkis API, no Qt imports).

Pixel data of 8-bit RGBA layers is BGRA in Krita; selections are one byte per pixel; shapes
are in points (1/72 inch) relative to their vector layer, whose offset is ``position()``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dragedit_protocol.editor.errors import UserError
from dragedit_protocol.editor.geometry import PointPair, Rect, pairs_from_strokes, place_new_pair
from dragedit_protocol.editor.pixels import selection_mask, swap_red_blue
from dragedit_protocol.regions import region_box_around_points

from .shapes import pair_svg, svg_strokes

POINTS_LAYER = "Drag points"
SETTINGS_ANNOTATION = "dragedit"


@dataclass
class Source:
    """The pixels a drag starts from: a paint layer (node) or the visible image (node None)."""

    node: Any
    name: str
    rect: Rect
    rgba: bytes


@dataclass(frozen=True)
class Stroke:
    """One drag stroke on the points layer: which shape it belongs to and its anchors in image pixels."""

    shape_index: int
    anchors: list[tuple[float, float]]


def walk_nodes(node: Any):
    """Every node below ``node``, depth first, bottom to top."""
    for child in node.childNodes():
        yield child
        yield from walk_nodes(child)


def points_layer(doc: Any) -> Any | None:
    """The vector layer named 'Drag points', or None."""
    for node in walk_nodes(doc.rootNode()):
        if node.type() == "vectorlayer" and node.name() == POINTS_LAYER:
            return node
    return None


def ensure_points_layer(doc: Any) -> Any:
    """The 'Drag points' layer, created on top of the layer stack when missing."""
    layer = points_layer(doc)
    if layer is None:
        layer = doc.createVectorLayer(POINTS_LAYER)
        doc.rootNode().addChildNode(layer, None)
    return layer


def read_strokes(doc: Any) -> list[Stroke]:
    """The strokes drawn on the points layer, in image pixels (empty without the layer)."""
    layer = points_layer(doc)
    if layer is None:
        return []
    sx, sy = doc.xRes() / 72.0, doc.yRes() / 72.0
    offset = layer.position()
    strokes = []
    for index, shape in enumerate(layer.shapes()):
        try:
            shape_strokes = svg_strokes(shape.toSvg())
        except ValueError as exc:
            raise UserError(f"Shape '{shape.name()}' on the {POINTS_LAYER} layer cannot be read ({exc})",
                            "redraw it as a simple line or path")
        for anchors in shape_strokes:
            strokes.append(Stroke(index, [(x * sx + offset.x(), y * sy + offset.y()) for x, y in anchors]))
    return strokes


def read_pairs(doc: Any) -> list[PointPair]:
    """The drag point pairs: per stroke, first anchor = handle, last anchor = target."""
    if points_layer(doc) is None:
        raise UserError(f"There is no '{POINTS_LAYER}' layer",
                        "click 'Add point pair', or draw lines on a vector layer named 'Drag points'")
    strokes = read_strokes(doc)
    if not strokes:
        raise UserError(f"The '{POINTS_LAYER}' layer has no point pairs",
                        "click 'Add point pair' or draw a line from a handle to its target on that layer")
    return pairs_from_strokes([s.anchors for s in strokes])


def selection_bounds(doc: Any) -> Rect | None:
    """The bounding rectangle of the selected pixels (None without a selection or when it is empty)."""
    selection = doc.selection()
    if selection is None or selection.width() <= 0 or selection.height() <= 0:
        return None
    return Rect(selection.x(), selection.y(), selection.width(), selection.height())


def editable_area_text(doc: Any) -> str:
    """What may change in the next drag, for the docker: the selection, or the area around the points."""
    bounds = selection_bounds(doc)
    if bounds is not None:
        return f"Editable: the selection ({bounds.width} x {bounds.height} px)."
    try:
        pairs = read_pairs(doc)
    except UserError:
        return "No selection: the area around the points will be editable."
    w, h = doc.width(), doc.height()
    x0, y0, x1, y1 = region_box_around_points([p.to_index(w, h) for p in pairs], w, h)
    return (f"No selection: the {x1 - x0} x {y1 - y0} px area around the points (from {x0}, {y0}) may change. "
            "Select a region to choose it yourself.")


def add_pair(doc: Any) -> PointPair:
    """Drop a new arrow on the points layer inside the selection (or the image), numbered after the others."""
    layer = ensure_points_layer(doc)
    count = len(read_strokes(doc))
    w, h = doc.width(), doc.height()
    pair = place_new_pair(count, selection_bounds(doc) or Rect(0, 0, w, h))
    layer.addShapesFromSvg(pair_svg(count + 1, pair.handle, pair.target, line_width=max(w, h) / 400))
    return pair


def remove_shape(doc: Any, shape_index: int) -> None:
    """Delete one shape of the points layer (all its strokes)."""
    layer = points_layer(doc)
    if layer is not None:
        shapes = layer.shapes()
        if 0 <= shape_index < len(shapes):
            shapes[shape_index].remove()


def clear_pairs(doc: Any) -> None:
    layer = points_layer(doc)
    if layer is not None:
        for shape in layer.shapes():
            shape.remove()


def check_rgba8(what: str, model: str, depth: str) -> None:
    if (model, depth) != ("RGBA", "U8"):
        raise UserError(f"DragEdit works on 8-bit RGB images, but {what} is {model} {depth}",
                        "convert it with Image > Convert Image Color Space... to RGB/Alpha, 8-bit integer/channel")


def pick_source_node(doc: Any, remembered: Any | None) -> Any:
    """The active paint layer, else the paint layer last active (e.g. while editing the points)."""
    active = doc.activeNode()
    if active is not None and active.type() == "paintlayer":
        return active
    if remembered is not None:
        for node in walk_nodes(doc.rootNode()):
            if node.uniqueId() == remembered:
                return node
    name = f"'{active.name()}'" if active is not None else "nothing"
    raise UserError(f"The active layer is {name}, not a paint layer",
                    "select the paint layer to drag in the Layers docker, or choose 'Visible image' as the source")


def read_source(doc: Any, node: Any | None) -> Source:
    """RGBA pixels of the image rectangle, from a paint layer or (node None) the visible image."""
    rect = Rect(0, 0, doc.width(), doc.height())
    if node is not None:
        check_rgba8(f"layer '{node.name()}'", node.colorModel(), node.colorDepth())
        data = node.pixelData(rect.x, rect.y, rect.width, rect.height)
        return Source(node, node.name(), rect, swap_red_blue(bytes(data)))
    check_rgba8("the image", doc.colorModel(), doc.colorDepth())
    arrows = points_layer(doc)
    shown = arrows is not None and arrows.visible()
    if shown:  # the arrows must not end up in the pixels
        arrows.setVisible(False)
        doc.refreshProjection()
    try:
        data = doc.pixelData(rect.x, rect.y, rect.width, rect.height)
    finally:
        if shown:
            arrows.setVisible(True)
            doc.refreshProjection()
    return Source(None, "visible image", rect, swap_red_blue(bytes(data)))


def read_mask(doc: Any, rect: Rect, soft_edge_px: int = 0) -> bytes | None:
    """The selection over ``rect`` as a mask (None: no selection), its edge softened inwards if asked."""
    selection = doc.selection()
    if selection is None:
        return None
    if soft_edge_px > 0:
        # Soften a copy (the artist's selection stays as it is), inwards: shrunk by the soft edge, then
        # feathered by as much, the fade ends at the selection's edge and the outside stays the source's.
        selection = selection.duplicate()
        selection.shrink(soft_edge_px, soft_edge_px, False)
        selection.feather(soft_edge_px)
    data = bytes(selection.pixelData(rect.x, rect.y, rect.width, rect.height))
    return selection_mask(data, rect.width, rect.height)


def insert_result(doc: Any, source: Source, rect: Rect, rgba: bytes, name: str) -> Any:
    """A new paint layer holding ``rgba`` at ``rect`` (the edited region), above the source, as one undo step.

    The pixels are written before the layer joins the image, so adding it is the only
    (undoable) change; the visible-image source puts it just below the points layer.
    """
    node = doc.createNode(name, "paintlayer")
    node.setPixelData(swap_red_blue(rgba), rect.x, rect.y, rect.width, rect.height)
    if source.node is not None:
        source.node.parentNode().addChildNode(node, source.node)
    else:
        root = doc.rootNode()
        children = root.childNodes()
        arrows = points_layer(doc)
        index = next((i for i, n in enumerate(children) if arrows is not None and n.uniqueId() == arrows.uniqueId()), None)
        root.addChildNode(node, children[index - 1] if index else None)
    doc.waitForDone()
    return node


def load_document_settings(doc: Any) -> str:
    """The DragEdit settings JSON saved in the document ('' when none)."""
    return bytes(doc.annotation(SETTINGS_ANNOTATION)).decode("utf-8", errors="replace")


def save_document_settings(doc: Any, text: str) -> None:
    doc.setAnnotation(SETTINGS_ANNOTATION, "DragEdit method and parameters", text.encode("utf-8"))
