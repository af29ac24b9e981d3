"""The Krita document layer against fake_krita: points, pixels, selection, result layer, settings."""
import pytest

from dragedit_protocol.editor.errors import UserError
from dragedit_protocol.editor.geometry import PointPair, Rect
from dragedit_krita import document

from fake_krita import Document, Selection

BGRA = bytes([10, 20, 30, 255])


def make_doc(resolution=72.0, width=40, height=30):
    doc = Document(width, height, resolution)
    src = doc.add_paint_layer("src", BGRA)
    doc.setActiveNode(src)
    return doc, src


@pytest.mark.parametrize("resolution", [72.0, 144.0, 300.0])
def test_points_come_back_in_pixels_at_any_resolution(resolution):
    doc, _ = make_doc(resolution)
    document.add_pair(doc)
    layer = document.points_layer(doc)
    s = 72.0 / resolution
    layer.add_raw_shape(f'<path transform="matrix({s} 0 0 {s} {3 * s} {4 * s})" d="M0 0L20 10" sodipodi:nodetypes="cc"/>')
    pairs = document.read_pairs(doc)
    # the first new pair spans 0.35 .. 0.6 of the width at 0.3 of the height
    assert pairs[0].handle == pytest.approx((14.0, 9.0)) and pairs[0].target == pytest.approx((24.0, 9.0))
    assert pairs[1].handle == pytest.approx((3.0, 4.0)) and pairs[1].target == pytest.approx((23.0, 14.0))


def test_the_vector_layer_offset_moves_the_points():
    doc, _ = make_doc()
    layer = document.ensure_points_layer(doc)
    layer.add_raw_shape('<path transform="translate(2, 3)" d="M0 0L10 0"/>')
    layer.move(10, 5)
    assert document.read_pairs(doc) == [PointPair((12.0, 8.0), (22.0, 8.0))]


def test_add_pair_creates_the_points_layer_on_top_and_spreads_pairs():
    doc, _ = make_doc()
    document.add_pair(doc)
    document.add_pair(doc)
    assert doc.node_names() == ["src", "Drag points"]
    first, second = document.read_pairs(doc)
    assert first.handle[1] != second.handle[1]


def test_add_pair_puts_the_arrow_inside_the_selection():
    doc, _ = make_doc()
    selection = Selection(40, 30)
    selection.select(24, 16, 12, 10, 255)
    doc.setSelection(selection)
    for _ in range(3):
        document.add_pair(doc)
    pairs = document.read_pairs(doc)
    assert len(pairs) == 3
    for pair in pairs:
        for x, y in (pair.handle, pair.target):
            assert 24 <= x <= 36 and 16 <= y <= 26, pair
    assert len({p.handle[1] for p in pairs}) == 3  # one row each


def test_remove_and_clear_pairs():
    doc, _ = make_doc()
    for _ in range(3):
        document.add_pair(doc)
    document.remove_shape(doc, 1)
    assert len(document.read_strokes(doc)) == 2
    document.clear_pairs(doc)
    with pytest.raises(UserError, match="has no point pairs"):
        document.read_pairs(doc)


def test_missing_points_layer_and_one_anchor_strokes_are_explained():
    doc, _ = make_doc()
    with pytest.raises(UserError, match="There is no 'Drag points' layer"):
        document.read_pairs(doc)
    document.ensure_points_layer(doc).add_raw_shape('<path d="M 3 3"/>')
    with pytest.raises(UserError, match="stroke 1 has a single point"):
        document.read_pairs(doc)


def test_source_pixels_are_converted_to_rgba_and_colour_models_checked():
    doc, src = make_doc()
    source = document.read_source(doc, src)
    assert source.rect == Rect(0, 0, 40, 30) and source.rgba[:4] == bytes([30, 20, 10, 255])
    src.color = ("GRAYA", "U8")
    with pytest.raises(UserError, match="8-bit RGB images, but layer 'src' is GRAYA U8.*Convert Image Color Space"):
        document.read_source(doc, src)
    doc.color = ("RGBA", "F32")
    with pytest.raises(UserError, match="the image is RGBA F32"):
        document.read_source(doc, None)


def test_the_visible_image_is_read_without_the_arrows():
    doc, _ = make_doc()
    document.add_pair(doc)  # fake_krita's projection refuses to include visible arrows
    source = document.read_source(doc, None)
    assert source.node is None and source.rgba[:4] == bytes([30, 20, 10, 255])
    assert document.points_layer(doc).visible()  # shown again afterwards


def test_source_is_the_active_paint_layer_or_the_one_active_before():
    doc, src = make_doc()
    points = document.ensure_points_layer(doc)
    assert document.pick_source_node(doc, None) is src
    doc.setActiveNode(points)
    assert document.pick_source_node(doc, src.uniqueId()) is src
    with pytest.raises(UserError, match="active layer is 'Drag points', not a paint layer"):
        document.pick_source_node(doc, None)


def test_selection_becomes_a_mask_and_the_soft_edge_works_on_a_copy():
    doc, _ = make_doc()
    assert document.read_mask(doc, Rect(0, 0, 40, 30)) is None
    selection = Selection(40, 30)
    selection.select(0, 0, 10, 30, 255)
    doc.setSelection(selection)
    mask = document.read_mask(doc, Rect(0, 0, 40, 30))
    assert mask[0] == 255 and mask[10] == 0 and len(mask) == 1200
    feathered = document.read_mask(doc, Rect(0, 0, 40, 30), soft_edge_px=4)
    row = feathered[40 * 10:40 * 11]
    assert row[8] == 128 and row[5] == 255  # the fade lies inside the selection...
    assert row[9] == 0 and row[10] == 0  # ...and ends at its edge: the outside stays the source's
    assert doc._selection.feathered == 0 and not hasattr(doc._selection, "shrunk")  # the artist's selection is untouched


def test_the_result_is_one_new_layer_above_the_source_in_one_undo_step():
    doc, src = make_doc()
    document.add_pair(doc)
    source = document.read_source(doc, src)
    rgba = bytes([1, 2, 3, 255]) * (10 * 6)
    node = document.insert_result(doc, source, Rect(20, 12, 10, 6), rgba, "DragDiffusion (seed 1)")
    assert doc.node_names() == ["src", "DragDiffusion (seed 1)", "Drag points"]
    assert node.pixelData(20, 12, 1, 1) == bytes([3, 2, 1, 255])  # written as BGRA, at the region
    assert node.pixelData(19, 12, 1, 1) == bytes(4)  # the layer holds only the edited region
    assert doc.undo_steps == [("add", "Drag points"), ("add", "DragDiffusion (seed 1)")]
    assert bytes(src.pixels) == BGRA * (40 * 30)


def test_a_visible_image_result_goes_below_the_points_layer():
    doc, _ = make_doc()
    document.add_pair(doc)
    source = document.read_source(doc, None)
    document.insert_result(doc, source, source.rect, source.rgba, "GoodDrag")
    assert doc.node_names() == ["src", "GoodDrag", "Drag points"]


def test_settings_round_trip_through_the_document():
    doc, _ = make_doc()
    assert document.load_document_settings(doc) == ""
    document.save_document_settings(doc, '{"method": "goodrag"}')
    assert document.load_document_settings(doc) == '{"method": "goodrag"}'


def test_the_docker_says_what_may_change():
    doc, _ = make_doc()
    document.add_pair(doc)
    text = document.editable_area_text(doc)
    assert text.startswith("No selection: the ") and "area around the points" in text
    selection = Selection(40, 30)
    selection.select(4, 5, 12, 10, 255)
    doc.setSelection(selection)
    assert document.editable_area_text(doc) == "Editable: the selection (12 x 10 px)."
