"""The papers' metrics of `bench quality`: GoodDrag's DAI and the SSIM of DragLoRA's drag-back evaluation."""
from __future__ import annotations

import numpy as np
import pytest

from dragedit.toy.cases import all_cases
from dragedit.toy.metrics import dai, dai_radii, ssim


def test_dai_radii_are_the_papers_scaled_to_the_image_size():
    assert dai_radii(512) == (5, 10, 20)
    assert dai_radii(128) == (1, 2, 5)


def test_dai_is_zero_when_the_content_sits_at_the_target_and_grows_when_it_stayed():
    case = next(c for c in all_cases() if c.name == "move-short-0")  # a disc moved 14 px to the right
    before, after = case.image(), case.expected_image()
    for radius in dai_radii(128):
        moved = dai(before, after, case.points, radius)
        stayed = dai(before, before, case.points, radius)
        assert moved < 0.02 * stayed, (radius, moved, stayed)


def test_dai_follows_the_paper_normalisation():
    """Per pair: squared differences summed over the patch and channels (values in [0, 1]),
    averaged over the pairs, divided by (2 r + 1)^2 (the paper's Eq. 10, not the script's extra 1/n)."""
    original = np.zeros((20, 20, 3), np.uint8)
    edited = np.zeros((20, 20, 3), np.uint8)
    edited[9:12, 9:12] = 255  # a 3 x 3 white square around (10, 10)
    pairs = [((5.0, 5.0), (10.5, 10.5)), ((5.0, 5.0), (2.0, 2.0))]
    # first pair: 9 pixels x 3 channels differ by 1 -> 27 / 9 = 3; second pair: 0; mean 1.5
    assert dai(original, edited, pairs, 1) == pytest.approx(1.5)


def test_ssim_is_one_for_identical_images_and_matches_the_closed_form_for_a_flat_shift():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    assert ssim(image, image) == pytest.approx(1.0)
    noisy = np.clip(image + rng.normal(0, 40, image.shape), 0, 255).astype(np.uint8)
    assert ssim(image, noisy) < 0.9 and ssim(image, noisy) == pytest.approx(ssim(noisy, image))
    flat_a, flat_b = np.full((16, 16, 3), 100, np.uint8), np.full((16, 16, 3), 150, np.uint8)
    c1 = (0.01 * 255) ** 2  # no variance: only the luminance term is left
    assert ssim(flat_a, flat_b) == pytest.approx((2 * 100 * 150 + c1) / (100 ** 2 + 150 ** 2 + c1))
