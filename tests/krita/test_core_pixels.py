"""Pixel and geometry helpers of the editor-neutral core."""
import pytest
from hypothesis import given, settings, strategies as st

from dragedit_protocol.editor.errors import UserError
from dragedit_protocol.editor.geometry import PointPair, Rect, check_pairs_inside, pairs_from_strokes
from dragedit_protocol.editor.pixels import blend, crop, mask_bounds, selection_mask, swap_red_blue


def test_swap_red_blue_turns_bgra_into_rgba_and_back():
    bgra = bytes([1, 2, 3, 4, 10, 20, 30, 40])
    rgba = swap_red_blue(bgra)
    assert rgba == bytes([3, 2, 1, 4, 30, 20, 10, 40])
    assert swap_red_blue(rgba) == bgra


def test_crop_takes_the_rectangles_rows():
    width, height = 5, 4
    image = bytes(range(width * height * 2))  # 2 channels
    part = crop(image, width, 2, Rect(1, 2, 3, 2))
    assert part == bytes([22, 23, 24, 25, 26, 27, 32, 33, 34, 35, 36, 37])  # rows 2-3, x 1-3


def test_selection_mask_full_partial_and_empty():
    assert selection_mask(b"\xff" * 6, 3, 2) == b"\xff" * 6
    assert selection_mask(b"\xff\x00\x80\x00\x00\x00", 3, 2) == b"\xff\x00\x80\x00\x00\x00"
    with pytest.raises(UserError, match="does not cover the layer"):
        selection_mask(b"\x00" * 6, 3, 2)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.data())
def test_mask_bounds_matches_a_brute_force_scan(width, height, data):
    mask = bytes(data.draw(st.lists(st.sampled_from([0, 0, 0, 7, 255]), min_size=width * height,
                                    max_size=width * height)))
    on = [(i % width, i // width) for i, v in enumerate(mask) if v]
    bounds = mask_bounds(mask, width, height)
    if not on:
        assert bounds is None
    else:
        xs, ys = [p[0] for p in on], [p[1] for p in on]
        assert bounds == Rect(min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_blend_is_source_outside_edited_inside_and_a_mix_between(data):
    n = data.draw(st.integers(1, 40))
    mask = bytes(data.draw(st.lists(st.sampled_from([0, 255, 1, 128, 254]), min_size=n, max_size=n)))
    source = bytes(data.draw(st.lists(st.integers(0, 255), min_size=4 * n, max_size=4 * n)))
    edited = bytes(data.draw(st.lists(st.integers(0, 255), min_size=4 * n, max_size=4 * n)))
    out = blend(source, edited, mask)
    for i, a in enumerate(mask):
        for j in range(4 * i, 4 * i + 4):
            assert out[j] == (source[j] * (255 - a) + edited[j] * a + 127) // 255
            if a == 0:
                assert out[j] == source[j]
            if a == 255:
                assert out[j] == edited[j]


def test_blend_rejects_mismatched_sizes():
    with pytest.raises(ValueError):
        blend(b"\x00" * 8, b"\x00" * 8, b"\x00")


def test_pairs_from_strokes_uses_first_and_last_anchor():
    pairs = pairs_from_strokes([[(1, 2), (5, 5), (9, 8)], [(3, 3), (4, 4)]])
    assert pairs == [PointPair((1.0, 2.0), (9.0, 8.0)), PointPair((3.0, 3.0), (4.0, 4.0))]


def test_a_stroke_with_one_anchor_is_a_clear_error():
    with pytest.raises(UserError) as err:
        pairs_from_strokes([[(1, 2), (3, 4)], [(5, 5)]])
    assert "stroke 2 has a single point" in str(err.value)
    assert "at least two points" in str(err.value)


def test_a_stroke_ending_on_its_start_is_an_error():
    with pytest.raises(UserError, match="ends where it starts"):
        pairs_from_strokes([[(4, 4), (9, 9), (4.1, 4)]])


def test_points_outside_the_layer_are_named():
    layer = Rect(10, 20, 30, 40)
    check_pairs_inside([PointPair((10, 20), (40, 60))], layer)  # edges are inside
    with pytest.raises(UserError) as err:
        check_pairs_inside([PointPair((12, 25), (15, 25)), PointPair((15, 30), (41, 30))], layer)
    assert "target of point pair 2 (41, 30) is outside the layer" in str(err.value)
    assert "Move it inside the layer" in str(err.value)
    with pytest.raises(UserError, match="no drag points"):
        check_pairs_inside([], layer)


def test_to_index_maps_continuous_coordinates_to_pixel_indices():
    pair = PointPair((0.0, 10.0), (10.5, 3.5))
    assert pair.to_index(10, 10) == (0.0, 9.0, 9.0, 3.0)


def test_rect_maths():
    a = Rect(0, 0, 10, 10)
    assert a.intersect(Rect(5, 6, 10, 10)) == Rect(5, 6, 5, 4)
    assert a.intersect(Rect(20, 20, 5, 5)).is_empty
    assert a.union(Rect(12, 1, 2, 2)) == Rect(0, 0, 14, 10)
    assert Rect.around([(1.5, 2.2), (4.0, 3.9)]) == Rect(1, 2, 4, 2)
    assert a.expanded(2) == Rect(-2, -2, 14, 14)
