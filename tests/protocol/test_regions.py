"""The one definition of a drag's editable region without a selection (protocol/dragedit_protocol/regions.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragedit_protocol.regions import MARGIN_FRACTION, box_mask, region_around_points, region_box_around_points


def test_box_is_the_points_grown_by_a_quarter_of_the_short_side():
    # a 12 px drag on a 200 x 128 image: margin max(0.25 x 128, 12) = 32
    assert region_box_around_points([(60, 50, 72, 50)], 200, 128) == (28, 18, 105, 83)


def test_a_long_drag_grows_the_margin_to_its_length():
    # a 50 px drag on a 400 x 400 image: max(100, 50) = 100; an 150 px drag: margin 150
    assert region_box_around_points([(200, 200, 250, 200)], 400, 400) == (100, 100, 351, 301)
    assert region_box_around_points([(160, 200, 310, 200)], 1000, 400) == (10, 50, 461, 351)


def test_box_is_clipped_to_the_image_and_takes_every_pair_in_either_form():
    flat = region_box_around_points([(2, 3, 10, 3), (100, 90, 110, 95)], 128, 128)
    nested = region_box_around_points([((2, 3), (10, 3)), ((100, 90), (110, 95))], 128, 128)
    assert flat == nested == (0, 0, 128, 128)
    assert MARGIN_FRACTION == 0.25


def test_mask_is_255_inside_the_box_and_0_outside():
    mask = box_mask((1, 2, 4, 3), 5, 4)
    rows = [mask[y * 5:(y + 1) * 5] for y in range(4)]
    assert rows == [bytes(5), bytes(5), b"\x00\xff\xff\xff\x00", bytes(5)]


@given(st.integers(1, 300), st.integers(1, 300), st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1),
                                                                     st.floats(0, 1), st.floats(0, 1)),
                                                           min_size=1, max_size=4))
def test_every_point_lies_in_the_region_of_any_image(width, height, unit_points):
    points = [(hx * (width - 1), hy * (height - 1), tx * (width - 1), ty * (height - 1))
              for hx, hy, tx, ty in unit_points]
    mask = region_around_points(points, width, height)
    assert len(mask) == width * height
    for hx, hy, tx, ty in points:
        for x, y in ((hx, hy), (tx, ty)):
            assert mask[int(y) * width + int(x)] == 255


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="no drag points"):
        region_around_points([], 10, 10)
    with pytest.raises(ValueError, match="outside"):
        region_around_points([(500, 500, 510, 500)], 10, 10)
    with pytest.raises(ValueError, match=r"\(hx, hy, tx, ty\)"):
        region_around_points([(1, 2, 3)], 10, 10)


def test_importing_it_needs_no_numpy_or_torch():
    code = ("import sys; import dragedit_protocol.regions; "
            "bad = {'numpy', 'torch'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
