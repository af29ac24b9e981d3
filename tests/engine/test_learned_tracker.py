"""StableDrag's learned tracker and confident supervision, on synthetic feature maps."""
from __future__ import annotations

import torch

from dragedit.engine.learned_tracker import (gaussian_label, track_points_discriminative, tracking_scores,
                                             train_point_filters)
from dragedit.engine.losses import motion_loss
from dragedit.engine.patches import sample_patches

CENTER = 3 * 7 + 3  # index of the window's middle for radius 3


def _map_with_distractors(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features where a neighbour of each handle correlates MORE with its template than the handle itself."""
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(1, 64, 20, 20, generator=gen)
    handles = torch.tensor([[10.0, 10.0], [5.0, 6.0]])
    feats[0, :, 10, 11] = 1.3 * feats[0, :, 10, 10] + 0.5 * torch.randn(64, generator=gen)
    feats[0, :, 6, 7] = 1.4 * feats[0, :, 6, 5] + 0.5 * torch.randn(64, generator=gen)
    return feats, handles


def test_gaussian_label_peaks_in_the_middle():
    label = gaussian_label(2, 1.0, torch.device("cpu"))
    assert label.shape == (5, 5) and label[2, 2] == 1.0 and label.flatten().argmax() == 12
    assert torch.isclose(label[2, 3], torch.exp(torch.tensor(-0.5)))


def test_tracker_response_peaks_at_the_handle_after_training():
    feats, handles = _map_with_distractors()
    windows = sample_patches(feats, handles, 3)
    untrained = train_point_filters(feats, handles, 3, iterations=0)
    assert torch.allclose(untrained.response(windows)[:, 3, 3], torch.ones(2))  # template normalised to 1
    assert (untrained.response(windows).flatten(1).argmax(dim=1) != CENTER).all()  # the distractor wins untrained
    trained = train_point_filters(feats, handles, 3, iterations=1000, sigma=1.0)
    response = trained.response(windows)
    assert (response.flatten(1).argmax(dim=1) == CENTER).all()
    assert torch.allclose(response, gaussian_label(3, 1.0, torch.device("cpu")).expand_as(response), atol=0.05)
    assert torch.equal(trained.templates, untrained.templates)  # f_i = F0(p0), the init and the L1 template


def _latent_like_map(seed: int = 0) -> torch.Tensor:
    """Random features bilinearly upsampled x4, as SD's up_blocks[2] output is to the supervision resolution."""
    grid = torch.randn(1, 64, 8, 8, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(grid, size=(32, 32), mode="bilinear")


def test_discriminative_tracking_follows_moved_content_with_high_confidence():
    feats = _latent_like_map()
    handles = torch.tensor([[10.0, 10.0], [15.0, 18.0], [21.0, 13.0]])
    filters = train_point_filters(feats, handles, 3, iterations=1000)
    same, first = track_points_discriminative(feats, filters, handles, 3)
    assert torch.equal(same, handles) and (first > 0.5).all()
    for dy, dx in ((1, 2), (-2, 1), (0, -2)):
        moved = torch.roll(feats, shifts=(dy, dx), dims=(2, 3))
        new, confidence = track_points_discriminative(moved, filters, handles, 3)
        assert torch.equal(new, handles + torch.tensor([dx, dy], dtype=torch.float32))
        assert (confidence > first - 1e-5).all()  # the same content scores the same
    _, lost = track_points_discriminative(_latent_like_map(seed=7), filters, handles, 3)
    assert (lost < 0.5 * first).all()  # content gone: a clear drop in confidence


def test_score_mixes_template_and_filter_with_lambda():
    feats, handles = _map_with_distractors()
    filters = train_point_filters(feats, handles, 3, iterations=50)
    windows = sample_patches(feats, handles, 3)
    only_template = tracking_scores(feats, filters, handles, 3, template_weight=1.0)
    only_filter = tracking_scores(feats, filters, handles, 3, template_weight=0.0)
    assert torch.allclose(only_template[:, CENTER], torch.ones(2))  # exp(-0): the template itself
    assert torch.allclose(only_filter, filters.response(windows).flatten(1))
    mixed = tracking_scores(feats, filters, handles, 3, template_weight=0.3)
    assert torch.allclose(mixed, 0.3 * only_template + 0.7 * only_filter, atol=1e-6)


def test_tracking_stays_inside_the_feature_map():
    feats, _ = _map_with_distractors()
    corner = torch.tensor([[0.0, 0.0]])
    filters = train_point_filters(feats, corner, 3, iterations=20)
    new, confidence = track_points_discriminative(torch.zeros_like(feats), filters, corner, 3)
    assert (new >= 0).all() and (new <= 19).all() and torch.isfinite(confidence).all()


def test_self_referenced_flag_switches_each_point_between_own_patch_and_template():
    gen = torch.Generator().manual_seed(1)
    original = torch.randn(1, 8, 16, 16, generator=gen)
    current = torch.randn(1, 8, 16, 16, generator=gen)
    p0 = torch.tensor([[5.0, 5.0], [9.0, 9.0]])
    handles = torch.tensor([[6.0, 5.0], [9.0, 10.0]])
    targets = torch.tensor([[12.0, 5.0], [9.0, 14.0]])
    own = motion_loss(current, handles, targets, 1)
    template = motion_loss(current, handles, targets, 1, reference=original, reference_points=p0)
    assert not torch.isclose(own, template)
    all_confident = torch.tensor([True, True])
    assert torch.isclose(motion_loss(current, handles, targets, 1, reference=original, reference_points=p0,
                                     self_referenced=all_confident), own)
    assert torch.isclose(motion_loss(current, handles, targets, 1, reference=original, reference_points=p0,
                                     self_referenced=~all_confident), template)
    mixed = motion_loss(current, handles, targets, 1, reference=original, reference_points=p0,
                        self_referenced=torch.tensor([True, False]))
    expected = motion_loss(current, handles[:1], targets[:1], 1) + motion_loss(
        current, handles[1:], targets[1:], 1, reference=original, reference_points=p0[1:])
    assert torch.isclose(mixed, expected)
