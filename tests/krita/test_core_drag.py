"""Which region of a layer is sent to the daemon, and how the result comes back."""
import pytest

from dragedit_protocol.editor.drag import MIN_CONTEXT_PX, compose_result, plan_drag
from dragedit_protocol.editor.errors import UserError
from dragedit_protocol.editor.geometry import PointPair, Rect
from dragedit_protocol.editor.pixels import crop


def gradient(width, height):
    return bytes((x * 3 + y * 7 + c * 50) % 256 for y in range(height) for x in range(width) for c in range(4))


def rect_mask(width, height, rect):
    return bytes(255 if rect.x <= x < rect.right and rect.y <= y < rect.bottom else 0
                 for y in range(height) for x in range(width))


def test_without_selection_the_area_around_the_points_may_change():
    from dragedit_protocol.regions import region_around_points

    width, height = 400, 300
    layer = Rect(0, 0, width, height)
    pairs = [PointPair((200.5, 150.5), (220.5, 150.5))]
    plan = plan_drag(gradient(width, height), layer, pairs)
    expected = region_around_points([pairs[0].to_index(width, height)], width, height)
    assert plan.mask == crop(expected, width, 1, plan.region)
    editable = [i for i, v in enumerate(expected) if v]
    assert 0 < len(editable) < width * height  # a box around the points, not the whole layer
    assert plan.region.contains((200.5, 150.5)) and plan.region.width < width


def test_select_all_makes_the_whole_layer_editable():
    layer = Rect(0, 0, 20, 10)
    rgba = gradient(20, 10)
    plan = plan_drag(rgba, layer, [PointPair((2.5, 3.5), (10.5, 5.5))], b"\xff" * 200)
    assert plan.region == Rect(0, 0, 20, 10)
    assert plan.rgba == rgba and plan.mask == b"\xff" * 200
    assert plan.points == [(2.0, 3.0, 10.0, 5.0)]


def test_with_selection_the_selection_box_plus_context_is_sent():
    width, height = 300, 200
    layer = Rect(0, 0, width, height)
    rgba = gradient(width, height)
    selected = Rect(100, 80, 40, 20)
    mask = rect_mask(width, height, selected)
    pairs = [PointPair((110.5, 90.5), (150.5, 90.5))]  # the target lies outside the selection, inside the margin
    plan = plan_drag(rgba, layer, pairs, mask)
    # margin = max(32, 0.5 * 40) around the selection box
    assert plan.region == Rect(100 - MIN_CONTEXT_PX, 80 - MIN_CONTEXT_PX, 40 + 2 * MIN_CONTEXT_PX, 20 + 2 * MIN_CONTEXT_PX)
    assert plan.rgba == crop(rgba, width, 4, plan.region)
    assert plan.mask == crop(mask, width, 1, plan.region)
    hx, hy, tx, ty = plan.points[0]
    assert (hx + plan.region.x, hy + plan.region.y, tx + plan.region.x, ty + plan.region.y) == (110, 90, 150, 90)


def test_moving_points_inside_the_margin_keeps_the_region_so_daemon_caches_hit():
    width, height = 300, 200
    rgba, mask = gradient(width, height), rect_mask(width, height, Rect(100, 80, 40, 20))
    first = plan_drag(rgba, Rect(0, 0, width, height), [PointPair((110, 90), (120, 90))], mask)
    second = plan_drag(rgba, Rect(0, 0, width, height), [PointPair((112, 85), (160, 110))], mask)
    assert first.region == second.region and first.rgba == second.rgba and first.mask == second.mask


def test_points_beyond_the_margin_grow_the_region():
    width, height = 300, 200
    mask = rect_mask(width, height, Rect(100, 80, 40, 20))
    plan = plan_drag(gradient(width, height), Rect(0, 0, width, height), [PointPair((110, 90), (250.5, 90))], mask)
    # the selection's region (68..172) grows to the target's pixel 250 plus the minimum context
    assert plan.region == Rect(68, 48, 251 + MIN_CONTEXT_PX - 68, 84)
    assert plan.points[0][2] + plan.region.x == 250.0


def test_the_region_is_clamped_to_the_layer():
    layer = Rect(0, 0, 50, 40)
    mask = rect_mask(50, 40, Rect(0, 0, 10, 10))
    plan = plan_drag(gradient(50, 40), layer, [PointPair((2, 2), (8, 8))], mask)
    assert plan.region == Rect(0, 0, 10 + MIN_CONTEXT_PX, 40)  # 42 high clamped to the layer's 40


def test_layer_offsets_are_honoured():
    # a GIMP layer at (100, 50) in the image: points are in image coordinates
    layer = Rect(100, 50, 20, 10)
    plan = plan_drag(gradient(20, 10), layer, [PointPair((101.5, 51.5), (110.5, 55.5))])
    assert plan.points == [(1.0, 1.0, 10.0, 5.0)]
    with pytest.raises(UserError, match="outside the layer"):
        plan_drag(gradient(20, 10), layer, [PointPair((5, 5), (110, 55))])


def test_result_is_blended_through_the_selection_and_the_rest_is_the_source():
    width, height = 120, 90
    layer = Rect(0, 0, width, height)
    source = gradient(width, height)
    selected = Rect(50, 40, 10, 8)
    mask = bytearray(rect_mask(width, height, selected))
    mask[40 * width + 60] = 128  # one feathered pixel just right of the selection
    plan = plan_drag(source, layer, [PointPair((52, 42), (57, 45))], bytes(mask))
    edited = bytes([200, 100, 50, 255]) * (plan.region.width * plan.region.height)
    rect, region_out = compose_result(plan, source, {"width": plan.region.width, "height": plan.region.height,
                                                     "data": edited})
    assert rect == plan.region and rect.width < width  # only the edited region comes back as a layer
    out = bytearray(source)
    for row in range(rect.height):
        start = ((rect.y + row) * width + rect.x) * 4
        out[start:start + rect.width * 4] = region_out[row * rect.width * 4:(row + 1) * rect.width * 4]
    for y in range(height):
        for x in range(width):
            i = (y * width + x) * 4
            a = mask[y * width + x]
            if a == 255:
                assert out[i:i + 4] == bytes([200, 100, 50, 255])
            elif a == 0:
                assert out[i:i + 4] == source[i:i + 4]
            else:
                assert out[i] == (source[i] * 127 + 200 * 128 + 127) // 255


def test_with_everything_selected_the_result_replaces_the_layer_at_its_offset():
    layer = Rect(5, 7, 8, 6)
    plan = plan_drag(gradient(8, 6), layer, [PointPair((6, 8), (10, 11))], b"\xff" * 48)
    edited = bytes(range(8 * 6 * 4))
    assert compose_result(plan, gradient(8, 6), {"width": 8, "height": 6, "data": edited}) == (layer, edited)


def test_a_result_of_the_wrong_size_is_a_clear_error():
    plan = plan_drag(gradient(8, 6), Rect(0, 0, 8, 6), [PointPair((1, 1), (5, 4))], b"\xff" * 48)
    with pytest.raises(UserError, match="returned a 4x4 image for a 8x6 region"):
        compose_result(plan, gradient(8, 6), {"width": 4, "height": 4, "data": bytes(64)})


def test_an_empty_selection_mask_is_an_error():
    with pytest.raises(UserError, match="selection is empty"):
        plan_drag(gradient(8, 6), Rect(0, 0, 8, 6), [PointPair((1, 1), (5, 4))], bytes(48))
