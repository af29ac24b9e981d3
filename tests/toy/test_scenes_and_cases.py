"""The toy scenes, the fixed cases and the ground-truth measurements (no model needed)."""
from __future__ import annotations

import numpy as np
import pytest

from dragedit.toy.cases import CASE_SIZE, all_cases, select_cases
from dragedit.toy.measure import SUCCESS_PX, score_case
from dragedit.toy.scenes import Background, Scene, Shape, random_images, render

BG = Background((0.5, 0.5, 0.5), (0.4, 0.4, 0.45), wave_amp=0.0)


def _centroid(coverage: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(coverage > 0.5)
    return np.array([xs.mean(), ys.mean()])


def test_random_images_are_reproducible_and_varied():
    a, b = random_images(4, seed=3), random_images(4, seed=3)
    assert a.shape == (4, 128, 128, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a, random_images(4, seed=4))


def test_render_knows_where_every_object_is():
    disc = Shape("disc", 40, 50, 10, 10, (0.9, 0.1, 0.1))
    pixels, (coverage,) = render(Scene(128, BG, (disc,)))
    assert np.allclose(_centroid(coverage), (39.5, 49.5), atol=0.3)  # pixel centres sit at +0.5
    assert abs(coverage.sum() - np.pi * 100) < 5
    assert pixels[50, 40, 0] > 150 and pixels[50, 40, 1] < 80  # red inside
    assert pixels[5, 5, 0] < 150  # background outside


def test_moving_and_stretching_change_the_extent_as_asked():
    box = Shape("box", 60, 60, 12, 8, (0.1, 0.2, 0.9))
    _, (before,) = render(Scene(128, BG, (box,)))
    _, (moved,) = render(Scene(128, BG, (box.moved(15, -5),)))
    _, (wide,) = render(Scene(128, BG, (box.stretched("right", 10),)))
    assert np.allclose(_centroid(moved) - _centroid(before), (15, -5), atol=0.2)
    cols = lambda c: np.nonzero(c.max(axis=0) > 0.5)[0]  # noqa: E731
    assert cols(wide)[0] == cols(before)[0] and cols(wide)[-1] == cols(before)[-1] + 10
    with pytest.raises(ValueError, match="unrotated"):
        Shape("box", 60, 60, 12, 8, (0.1, 0.2, 0.9), angle=0.3).stretched("left", 4)


def test_hidden_parts_are_not_counted_as_visible():
    back = Shape("box", 60, 60, 20, 20, (0.9, 0.1, 0.1))
    front = Shape("disc", 60, 60, 10, 10, (0.1, 0.9, 0.1))
    _, (back_cov, front_cov) = render(Scene(128, BG, (back, front)))
    assert back_cov[60, 60] == 0 and front_cov[60, 60] == 1


def test_the_suite_covers_every_kind_of_drag():
    cases = all_cases()
    assert len(cases) >= 30
    assert len({c.name for c in cases}) == len(cases)
    kinds = {c.kind for c in cases}
    assert kinds == {"move", "stretch"}
    assert any(c.masked for c in cases) and any(not c.masked for c in cases)
    distances = [np.hypot(g.target[0] - g.handle[0], g.target[1] - g.handle[1]) for c in cases for g in c.grabs]
    assert min(distances) <= 14 and max(distances) >= 36  # short and long drags
    assert any(len(c.grabs) >= 3 for c in cases) and any(len({g.shape for g in c.grabs}) == 2 for c in cases)
    for case in cases:
        assert case.image().shape == (CASE_SIZE, CASE_SIZE, 4)
        for (hx, hy), (tx, ty) in case.points:
            assert 0 <= min(hx, hy, tx, ty) and max(hx, hy, tx, ty) < CASE_SIZE


def test_masks_cover_the_objects_start_and_end():
    case = next(c for c in all_cases() if c.masked and c.kind == "move")
    mask = case.mask()
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    for handle, target in case.points:
        assert mask[int(handle[1]), int(handle[0])] == 255 and mask[int(target[1]), int(target[0])] == 255
    assert (mask == 0).mean() > 0.4  # most of the image must stay


@pytest.mark.parametrize("case", all_cases(), ids=lambda c: c.name)
def test_ground_truth_scores_perfect_and_the_input_scores_nothing(case):
    ideal = score_case(case, case.expected_image())
    assert ideal.success and ideal.moved_fraction > 0.9 and ideal.mean_distance_px < 1.5
    assert ideal.psnr_outside_db == float("inf")  # nothing outside the edited region changed
    unchanged = score_case(case, case.image())
    assert abs(unchanged.moved_fraction) < 0.02 and not unchanged.success


def test_half_way_moves_score_half_and_a_vanished_object_scores_zero():
    case = next(c for c in all_cases() if c.name == "move-long-0")
    (grab,) = case.grabs
    dx, dy = grab.target[0] - grab.handle[0], grab.target[1] - grab.handle[1]
    half = case.scene.with_shape(grab.shape, case.scene.shapes[grab.shape].moved(dx / 2, dy / 2))
    from dragedit.toy.cases import _rgba  # the same RGBA conversion the cases use

    score = score_case(case, _rgba(render(half)[0]))
    assert abs(score.moved_fraction - 0.5) < 0.05 and not score.success
    erased = case.scene.with_shape(grab.shape, case.scene.shapes[grab.shape].moved(500, 0))
    assert score_case(case, _rgba(render(erased)[0])).moved_fraction == 0.0


def test_psnr_outside_sees_changes_outside_the_edit_region_only():
    case = next(c for c in all_cases() if c.name == "move-short-0")
    out = case.expected_image().copy()
    outside = ~case.edit_region()
    out[outside] = np.clip(out[outside].astype(int) + 3, 0, 255).astype(np.uint8)
    psnr = score_case(case, out).psnr_outside_db
    assert 37 < psnr < 40  # an error of 3 levels everywhere: 20 log10(255 / 3) = 38.6 dB


def test_select_cases_spreads_over_the_groups():
    picked = select_cases(4)
    assert len(picked) == 4 and {c.kind for c in picked} == {"move", "stretch"}
    for count in (2, 4, 8, 16):  # the cases alternate unmasked / masked: a subset must not take only one kind
        picked = select_cases(count)
        assert len({c.name for c in picked}) == count
        assert sum(c.masked for c in picked) == count // 2, [c.name for c in picked]
    assert select_cases(None) == list(all_cases())
    with pytest.raises(ValueError):
        select_cases(0)


def test_success_threshold_is_a_few_pixels():
    assert 2 <= SUCCESS_PX <= 6


def test_colour_alone_finds_few_handles_in_the_ground_truth():
    """toy.diagnose's baseline for feature tracking: the nearest colour on the feature grid lands
    within 4 px of the target for 43% of the 44 handles, so features must do better than that."""
    from dragedit.toy.diagnose import colour_matching_errors

    errors = np.asarray(colour_matching_errors())
    assert len(errors) == sum(len(c.points) for c in all_cases())
    assert 0.2 < np.mean(errors <= 4) < 0.6 and np.median(errors) > 4
