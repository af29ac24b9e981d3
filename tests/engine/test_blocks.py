"""Each building block alone, against something computed independently."""
from __future__ import annotations

import math

import torch

from dragedit.engine.ddim import alpha_bar, ddpm_renoise, ddim_step, start_index, timesteps
from dragedit.engine.losses import mask_loss, motion_loss
from dragedit.engine.patches import sample_patches, sample_points
from dragedit.engine.tracking import candidate_mask, track_points


def test_patch_sampling_equals_hand_computed_bilinear_value():
    feats = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(1, 2, 5, 6) ** 1.5
    x, y = 2.3, 1.6
    x0, y0, fx, fy = 2, 1, 0.3, 0.6
    f = feats[0]
    expected = (f[:, y0, x0] * (1 - fx) * (1 - fy) + f[:, y0, x0 + 1] * fx * (1 - fy)
                + f[:, y0 + 1, x0] * (1 - fx) * fy + f[:, y0 + 1, x0 + 1] * fx * fy)
    got = sample_points(feats, torch.tensor([[x, y]]))[0]
    assert torch.allclose(got, expected, atol=1e-4)
    patch = sample_patches(feats, torch.tensor([[3.0, 2.0]]), 1)[0]
    assert torch.equal(patch, feats[0, :, 1:4, 2:5])  # integer centre: exact window, row-major


def _planted(size=24, channels=8, at=(15, 9), seed=0):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.rand(1, channels, size, size, generator=gen) * 0.1
    signature = torch.linspace(1.0, 2.0, channels)
    feats[0, :, at[1], at[0]] = signature
    return feats, signature


def test_square_tracker_finds_planted_feature():
    feats, signature = _planted(at=(15, 9))
    new, dist = track_points(feats, signature[None], torch.tensor([[13.0, 10.0]]), torch.tensor([[20.0, 20.0]]), 3)
    assert new.tolist() == [[15.0, 9.0]]
    assert dist.item() < 1e-4


def test_distance_closer_region_never_moves_away_from_target():
    feats, signature = _planted(at=(10, 10))  # the best match lies away from the target
    handle, target = torch.tensor([[12.0, 10.0]]), torch.tensor([[20.0, 10.0]])
    new, _ = track_points(feats, signature[None], handle, target, 3, region="distance")
    assert (target - new).norm() <= (target - handle).norm() + 1e-6
    allowed = candidate_mask(handle, target, 3, "distance", (24, 24))
    assert allowed.any() and not allowed.all()
    square, _ = track_points(feats, signature[None], handle, target, 3, region="square")
    assert square.tolist() == [[10.0, 10.0]]  # the square tracker does go back


def test_angle_closer_region_keeps_direction():
    feats, signature = _planted(at=(14, 13))  # 45 degrees off the target direction
    handle, target = torch.tensor([[12.0, 11.0]]), torch.tensor([[20.0, 11.0]])
    new, _ = track_points(feats, signature[None], handle, target, 3, region="angle", angle_deg=30)
    step = new - handle
    if step.norm() > 0:
        cos = (step @ (target - handle).T / (step.norm() * (target - handle).norm())).item()
        assert cos >= math.cos(math.radians(30)) - 1e-6
    feats2, sig2 = _planted(at=(14, 11))
    new2, _ = track_points(feats2, sig2[None], handle, target, 3, region="angle")
    assert new2.tolist() == [[14.0, 11.0]]


def _blob(center_x: float, size=32, channels=4) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    blob = torch.exp(-((xs - center_x) ** 2 + (ys - 16) ** 2) / 8.0)
    return blob.expand(1, channels, size, size).clone()


def _blob_center(feats: torch.Tensor) -> float:
    w = feats[0, 0]
    xs = torch.arange(w.shape[1], dtype=torch.float32)
    return float((w.sum(0) * xs).sum() / w.sum())


def _one_step_moves_blob(**loss_kwargs) -> tuple[float, float]:
    center = torch.tensor(12.0, requires_grad=True)
    handles, targets = torch.tensor([[12.0, 16.0]]), torch.tensor([[20.0, 16.0]])
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    opt = torch.optim.SGD([center], lr=0.5)
    feats = torch.exp(-((xs - center) ** 2 + (ys - 16) ** 2) / 8.0).expand(1, 4, 32, 32)
    reference = loss_kwargs.pop("reference_from_original", False)
    if reference:
        loss_kwargs["reference"] = feats.detach().clone()
        loss_kwargs["reference_points"] = handles
    loss = motion_loss(feats, handles, targets, 1, **loss_kwargs)
    loss.backward()
    before = center.item()
    opt.step()
    return before, center.item()


def test_self_referenced_motion_loss_moves_feature_towards_target():
    before, after = _one_step_moves_blob()
    assert after > before


def test_information_preserving_motion_loss_moves_feature_towards_target():
    before, after = _one_step_moves_blob(reference_from_original=True, max_step=4.0)
    assert after > before


def test_motion_loss_ignores_points_that_arrived():
    feats = _blob(12.0).requires_grad_(True)
    loss = motion_loss(feats, torch.tensor([[12.0, 16.0]]), torch.tensor([[13.0, 16.0]]), 1)
    assert loss.item() == 0.0


def test_mask_loss_counts_only_outside_the_editable_region():
    a, b = torch.zeros(1, 4, 4, 4), torch.ones(1, 4, 4, 4)
    editable = torch.zeros(1, 1, 4, 4)
    editable[..., :2] = 1.0
    assert mask_loss(a, b, editable, 0.5).item() == 0.5 * 4 * 4 * 2
    assert mask_loss(a, b, torch.ones(1, 1, 4, 4), 0.5).item() == 0.0


def test_ddim_timesteps_and_strength(tiny_model_dir):
    from dragedit.engine.models import load_model

    model = load_model(str(tiny_model_dir))
    steps = timesteps(model.scheduler)
    assert steps[0] == 981 and steps[-1] == 1 and len(steps) == 50
    assert steps[start_index(0.7)] == 681 and len(steps[start_index(0.7):]) == 35
    assert steps[start_index(0.75)] == 741 and len(steps[start_index(0.75):]) == 38
    assert alpha_bar(model.scheduler, -19) == model.scheduler.alphas_cumprod[0]


def test_ddim_step_up_then_down_is_identity_for_fixed_eps():
    z, eps = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    a1, a2 = torch.tensor(0.9), torch.tensor(0.4)
    assert torch.allclose(ddim_step(ddim_step(z, eps, a1, a2), eps, a2, a1), z, atol=1e-5)


def test_ddpm_renoise_matches_forward_diffusion_statistics():
    x = torch.full((1, 4, 64, 64), 2.0)
    a_t, a_low = torch.tensor(0.3), torch.tensor(0.6)
    z = ddpm_renoise(x, a_t, a_low, torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert abs(z.mean().item() - 2.0 * math.sqrt(0.5)) < 0.05
    assert abs(z.std().item() - math.sqrt(0.5)) < 0.05
