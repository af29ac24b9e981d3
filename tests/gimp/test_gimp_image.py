"""Reading a drag from a GIMP image and adding the result layer (dragedit_gimp.image) on fake_gimp."""
from __future__ import annotations

import fake_gimp
import pytest
from scenes import HEIGHT, WIDTH, pattern, pixel, scene

from dragedit_gimp.image import find_path, insert_result, path_strokes, read_drag
from dragedit_protocol.editor.errors import UserError


def test_reads_layer_selection_and_one_pair_per_stroke():
    image, layer = scene(offsets=(8, 6), selection=(4, 4, 36, 36))
    source = read_drag(image, [layer])
    plan = source.plan
    assert source.layer is layer and source.path_name == "Drag points"
    assert (plan.layer.x, plan.layer.y, plan.layer.width, plan.layer.height) == (8, 6, WIDTH, HEIGHT)
    assert source.rgba == pattern(WIDTH, HEIGHT)
    # the region sent is inside the layer and holds the selection; its mask is the selection there
    region = plan.region
    assert 0 <= region.x and region.right <= WIDTH and 0 <= region.y and region.bottom <= HEIGHT
    assert len(plan.mask) == region.width * region.height
    inside = (40 - 8 - 1 - region.x, 40 - 6 - 1 - region.y)  # last selected pixel, region coordinates
    assert plan.mask[inside[1] * region.width + inside[0]] == 255
    assert plan.mask[(inside[1] + 1) * region.width + inside[0] + 1] == 0
    # strokes (image coordinates) -> layer -> region pixel-index coordinates
    (hx, hy, tx, ty), second = plan.points
    assert (hx + region.x + 8 + 0.5, hy + region.y + 6 + 0.5) == (10, 12)
    assert (tx + region.x + 8 + 0.5, ty + region.y + 6 + 0.5) == (20, 14)
    assert (second[0] + region.x + 8 + 0.5, second[3] + region.y + 6 + 0.5) == (30, 36)


def test_no_selection_makes_the_area_around_the_points_editable():
    image, layer = scene(selection=None)
    plan = read_drag(image, [layer]).plan
    assert plan.mask is not None and 0 < plan.mask.count(255) < len(plan.mask)


def test_anchors_skip_the_control_handles():
    image, _ = scene(strokes=None)
    path = fake_gimp.Path(image, "Drag points")
    path.stroke_new_from_points(0, [1, 2, 5, 6, 9, 9, 0, 0, 25, 20, 30, 30], False)
    assert path_strokes(path) == [[(5.0, 6.0), (25.0, 20.0)]]


def test_path_choice_named_then_selected():
    image, _ = scene(path_name="Other")
    other = image.get_paths()[0]
    with pytest.raises(UserError, match="no drag points") as err:
        find_path(image)
    assert "Paths tool" in str(err.value)
    image.selected_paths = [other]
    assert find_path(image) is other
    named = fake_gimp.Path(image, "Drag points")
    image.insert_path(named, None, 0)
    assert find_path(image) is named
    assert find_path(image, "Other") is other
    with pytest.raises(UserError, match="no path named 'Missing'.*'Drag points', 'Other'"):
        find_path(image, "Missing")


@pytest.mark.parametrize("base_type, word", [(fake_gimp.ImageBaseType.GRAY, "grayscale"),
                                             (fake_gimp.ImageBaseType.INDEXED, "indexed")])
def test_grayscale_and_indexed_images_are_refused_with_the_fix(base_type, word):
    image, layer = scene(base_type=base_type)
    with pytest.raises(UserError, match=f"The image is {word}.*Image > Mode > RGB"):
        read_drag(image, [layer])


@pytest.mark.parametrize("strokes, message", [
    ((((10, 12),),), "Drag stroke 1 has a single point"),
    ((((10, 12), (20, 14)), ((30, 30), (30.1, 30.1))), "Drag stroke 2 ends where it starts"),
    ((), "has no strokes"),
    ((((10, 12), (200, 14)),), r"target of point pair 1 \(200, 14\) is outside the layer"),
])
def test_bad_strokes_give_a_sentence_and_a_hint(strokes, message):
    image, layer = scene(strokes=strokes)
    with pytest.raises(UserError, match=message) as err:
        read_drag(image, [layer])
    assert err.value.hint


def test_points_are_checked_against_the_layer_not_the_canvas():
    # the canvas is 80 wide; the layer starts at x = 8, so x = 4 is outside the layer
    image, layer = scene(offsets=(8, 0), strokes=(((4, 12), (20, 14)),), selection=None)
    with pytest.raises(UserError, match="handle of point pair 1 .* outside the layer.*layer 'photo'"):
        read_drag(image, [layer])


def test_selection_outside_the_layer_is_an_error():
    image, layer = scene(offsets=(0, 0), selection=(70, 50, 8, 8))
    with pytest.raises(UserError, match="selection does not cover the layer"):
        read_drag(image, [layer])


def test_one_paint_layer_must_be_selected():
    image, layer = scene()
    with pytest.raises(UserError, match="2 layers are selected"):
        read_drag(image, [layer, layer])
    with pytest.raises(UserError, match="not a layer"):
        read_drag(image, [image.get_selection()])
    layer.group = True
    with pytest.raises(UserError, match="layer group"):
        read_drag(image, [layer])


def test_result_goes_in_a_new_layer_above_the_source_in_one_undo_group():
    image, layer = scene(offsets=(8, 6), selection=(4, 4, 36, 36))
    below = fake_gimp.Layer(image, "background", 4, 4)
    image.insert_layer(below, None, 1)
    source = read_drag(image, [layer])
    region = source.plan.region
    edited = bytes(255 - v if i % 4 != 3 else v for i, v in enumerate(source.plan.rgba))
    new = insert_result(source, {"width": region.width, "height": region.height, "data": edited}, "Drag")
    assert [l.get_name() for l in image.get_layers()] == ["Drag", "photo", "background"]
    assert image.undo_log == ["start", "end"]
    assert new.offsets == (8, 6) and (new.width, new.height) == (WIDTH, HEIGHT)
    assert layer.pixels == bytearray(pattern(WIDTH, HEIGHT))  # the source is untouched
    # inside the selection (image 10,10 -> layer 2,4): inverted; outside (image 50,40): the source
    assert pixel(new, 2, 4)[:3] == bytes(255 - v for v in pixel(layer, 2, 4)[:3])
    assert pixel(new, 42, 34) == pixel(layer, 42, 34)
    assert new.updates == [(0, 0, WIDTH, HEIGHT)]


def test_a_result_of_the_wrong_size_changes_nothing():
    image, layer = scene()
    source = read_drag(image, [layer])
    with pytest.raises(UserError, match="returned a 3x3 image"):
        insert_result(source, {"width": 3, "height": 3, "data": bytes(36)}, "Drag")
    assert image.get_layers() == [layer] and image.undo_log == []


def test_closed_image_is_reported():
    image, layer = scene()
    source = read_drag(image, [layer])
    image.valid = False
    with pytest.raises(UserError, match="image was closed"):
        read_drag(image, [layer])
    image.valid = True
    image.valid = False
    region = source.plan.region
    with pytest.raises(UserError, match="image was closed"):
        insert_result(source, {"width": region.width, "height": region.height, "data": source.plan.rgba}, "Drag")


def test_soft_edge_feathers_a_copy_of_the_selection_on_a_scratch_image():
    image, layer = scene(selection=(4, 4, 36, 36))
    selection_before = bytes(image.selection.mask)
    hard = read_drag(image, [layer]).plan
    soft = read_drag(image, [layer], soft_edge_px=3).plan
    assert set(hard.mask) == {0, 255}
    assert fake_gimp.Selection.SHRUNK == [3] and fake_gimp.Selection.FEATHERED == [3.0]
    partial = [v for v in soft.mask if 0 < v < 255]
    assert len(partial) > 2 * 36  # a soft band along the selection's edge, inside it: nothing outside
    assert not any(s for s, h in zip(soft.mask, hard.mask) if h == 0)
    # the artist's selection and undo history are as they were; the scratch image is gone
    assert bytes(image.selection.mask) == selection_before and image.undo_log == []
    scratch = [made for made in fake_gimp.Image.CREATED if made is not image]
    assert len(scratch) == 1 and scratch[0] in fake_gimp.Image.DELETED
