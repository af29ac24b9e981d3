"""Any image, any size: region planning, crop and the feathered paste."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dragedit.engine.api import EditError
from dragedit.engine.images import (
    CHANGED, UNCHANGED, Region, blend_weights, check_inputs, crop_to_work, paste, plan_region, sharp_result,
)
from dragedit_protocol.regions import region_around_points


def _image(h, w, seed=0):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    img[..., 3] = 200
    return img


def test_no_selection_means_the_default_region_around_the_points():
    points = [((100, 120), (130, 110))]
    selection = check_inputs(_image(300, 400), None, points)
    assert selection.dtype == np.uint8 and selection.shape == (300, 400)
    assert selection.tobytes() == region_around_points(points, 400, 300)  # the plug-ins' and the CLI's rule
    ys, xs = np.nonzero(selection)
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (25, 35, 205, 195)  # margin 0.25 x 300 = 75
    region = plan_region(selection > 0, np.array([[100.0, 120.0], [130.0, 110.0]]), 512, 64, 4)
    assert (region.x0, region.y0, region.x1, region.y1) == (0, 0, 400, 300)  # grown to the working size


def test_a_selection_is_returned_as_given_for_the_drag_and_the_paste():
    mask = np.zeros((50, 60), np.uint8)
    mask[10:30, 10:40] = 255
    mask[30:32, 10:40] = 40  # soft edge: editable for the drag (> 0), not pasted (< 128)
    assert np.array_equal(check_inputs(_image(50, 60), mask, [((15, 15), (25, 20))]), mask)


def test_small_selection_in_a_big_layer_gives_a_small_region():
    mask = np.zeros((3000, 4000), np.uint8)
    mask[1200:1400, 2500:2700] = 255
    points = np.array([[2550.0, 1250.0], [2650.0, 1300.0]])
    region = plan_region(mask > 127, points, 512, 64, 8)
    assert region.x0 <= 2500 and region.x1 >= 2700 and region.y0 <= 1200 and region.y1 >= 1400
    # smaller than the working size: it takes more context instead of being scaled up
    assert region.x1 - region.x0 == 512 and region.y1 - region.y0 == 512
    assert (region.work_w, region.work_h) == (512, 512) and region.scale == (1.0, 1.0)
    back = region.to_image(region.to_work(points))
    assert np.allclose(back, points)


def test_big_selection_is_scaled_down_to_the_working_size():
    mask = np.zeros((3000, 4000), np.uint8)
    mask[1000:2000, 1000:2400] = 255
    region = plan_region(mask > 127, np.array([[1500.0, 1500.0], [1700.0, 1500.0]]), 512, 64, 8)
    assert region.x0 <= 1000 and region.x1 >= 2400 and min(region.work_w, region.work_h) == 512
    assert region.scale[0] < 0.5


def test_selection_in_an_image_of_the_working_size_keeps_its_scale():
    mask = np.zeros((128, 128), np.uint8)
    mask[40:70, 50:90] = 255
    region = plan_region(mask > 127, np.array([[60.0, 50.0], [75.0, 50.0]]), 128, 32, 4)
    assert (region.x0, region.y0, region.x1, region.y1) == (0, 0, 128, 128)
    assert region.scale == (1.0, 1.0)


def test_thin_region_keeps_a_bounded_aspect():
    mask = np.zeros((1000, 1000), np.uint8)
    mask[500:510, 100:900] = 255
    region = plan_region(mask > 127, np.array([[200.0, 505.0], [300.0, 505.0]]), 64, 16, 0)
    assert max(region.work_w, region.work_h) <= 2 * 64


def test_paste_keeps_outside_bit_identical_and_alpha():
    img = _image(120, 160)
    mask = np.zeros((120, 160), bool)
    mask[40:80, 50:110] = True
    region = Region(20, 10, 140, 110, 96, 80)
    edited = np.full((80, 96, 3), 7, np.uint8)
    feather = 5
    out = paste(img, mask, region, edited, crop_to_work(img, region), feather)
    weights = blend_weights(mask, feather)
    assert out.shape == img.shape
    assert np.array_equal(out[weights == 0], img[weights == 0])
    assert np.array_equal(out[..., 3], img[..., 3])
    assert (out[45:75, 55:105, :3] == 7).all()  # fully inside: the edited pixels
    ring = (weights > 0) & (weights < 1)
    assert ring.any() and not (weights[~mask] == 1).any()


def test_crop_to_work_scales_the_region():
    img = _image(100, 100)
    work = crop_to_work(img, Region(10, 20, 60, 70, 32, 32))
    assert work.shape == (32, 32, 3) and work.dtype == np.uint8


@pytest.mark.parametrize("mask,points,code", [
    (None, [((10, 10), (200, 20))], "point_outside"),
    (None, [((-1, 10), (20, 20))], "point_outside"),
    (None, [((float("nan"), 10), (20, 20))], "point_outside"),
    (None, [], "no_points"),
    (None, [((10, 10), (10, 10))], "bad_points"),
    (np.zeros((50, 60), np.uint8), [((10, 10), (20, 20))], "empty_mask"),
    (np.ones((40, 60), np.uint8), [((10, 10), (20, 20))], "bad_mask"),
])
def test_bad_input_gives_clear_error(mask, points, code):
    with pytest.raises(EditError) as err:
        check_inputs(_image(50, 60), mask, points)
    assert err.value.code == code and err.value.message


def test_moving_points_inside_the_region_keeps_the_crop():
    mask = np.zeros((400, 500), bool)
    mask[100:200, 150:300] = True
    first = plan_region(mask, np.array([[180.0, 150.0], [220.0, 160.0]]), 64, 16, 4)
    moved = plan_region(mask, np.array([[190.0, 140.0], [260.0, 170.0]]), 64, 16, 4)
    assert first == moved  # same crop: the caches keyed by its pixels serve the second drag
    far = plan_region(mask, np.array([[180.0, 150.0], [480.0, 390.0]]), 64, 16, 4)
    assert far.x1 > 480 and far.y1 > 390  # a point outside still gets context around it


def test_sharp_result_keeps_the_full_resolution_detail_where_the_edit_changed_nothing():
    rng = np.random.default_rng(1)
    source = rng.integers(0, 256, (400, 600, 3), dtype=np.uint8)  # detail finer than the working size can hold
    region = Region(0, 0, 600, 400, 150, 100)  # worked at a quarter of the size
    # the model's rendering of the input is off by a colour shift (its VAE), and the edit paints a patch
    reference = np.clip(crop_to_work(np.dstack([source, source[..., :1]]), region).astype(int) + 20, 0, 255)
    reference = reference.astype(np.uint8)
    edited = reference.copy()
    edited[40:60, 60:90] = (250, 10, 10)
    out = np.clip(np.rint(sharp_result(source, edited, reference)), 0, 255)
    far = np.ones((400, 600), bool)
    far[140:260, 220:380] = False  # the patch (160:240, 240:360 at full size) and the scaling kernel's reach
    assert np.abs(out[far] - source[far]).max() <= 1  # unchanged: the source itself, not a blurred copy
    inside = out[170:230, 250:350]
    assert np.abs(inside - (250, 10, 10)).max() <= 2  # changed: the edit, no ghost of the old detail
    # the plain scaled-up edit (the old paste) loses the detail everywhere
    plain = np.asarray(Image.fromarray(edited).resize((600, 400), Image.Resampling.LANCZOS), dtype=np.float64)
    assert np.abs(plain[far] - source[far]).mean() > 40


def test_sharp_result_mixes_in_between_unchanged_and_changed():
    source = np.full((40, 40, 3), 100, np.uint8)
    source[::2] = 140  # stripes: detail the working size cannot hold
    reference = np.full((10, 10, 3), 120, np.uint8)
    halfway = reference + np.uint8((CHANGED + UNCHANGED) / 2)  # halfway from unchanged to changed
    out = sharp_result(source, halfway, reference)
    stripes = out[::2, :, 0].mean() - out[1::2, :, 0].mean()
    assert 5 < stripes < 35  # part of the source's 40-level stripes kept, not all, not none


def test_one_rounding_flip_in_the_edit_moves_the_sharp_result_by_little():
    # a model whose rendering is far from the input (a random one) makes the kept detail large: a one-level
    # flip in its output must not swing the result by many levels where it mixes kept and changed
    rng = np.random.default_rng(2)
    source = rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)
    reference = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    edited = np.clip(reference.astype(int) + (CHANGED + UNCHANGED) // 2, 0, 255).astype(np.uint8)  # mid-mix
    flipped = edited.copy()
    flipped[10, 10, 0] += 1
    swing = np.abs(sharp_result(source, flipped, reference) - sharp_result(source, edited, reference)).max()
    assert swing <= 2.5
