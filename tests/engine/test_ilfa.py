"""ILFA: one DDIM step down and a DDPM re-noise back up, inside the mask only."""
from __future__ import annotations

import torch

from dragedit.engine.ilfa import adapt_latent
from dragedit.engine.models import ddim_scheduler_config


def _abar(t: int) -> torch.Tensor:
    from diffusers import DDIMScheduler

    return DDIMScheduler(**ddim_scheduler_config()).alphas_cumprod[t]


def test_inside_the_mask_equals_the_hand_computed_step_and_outside_is_the_original():
    gen = torch.Generator().manual_seed(0)
    z, eps, z_orig, noise = (torch.randn(1, 4, 6, 6, generator=gen) for _ in range(4))
    editable = torch.zeros(1, 1, 6, 6)
    editable[..., :, 3:] = 1.0
    editable[..., :, 2] = 0.5
    a_t, a_l = _abar(681), _abar(661)
    out = adapt_latent(z, eps, z_orig, a_t, a_l, editable, noise)
    x0 = (z - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
    lower = a_l ** 0.5 * x0 + (1 - a_l) ** 0.5 * eps
    expected = (a_t / a_l) ** 0.5 * lower + (1 - a_t / a_l) ** 0.5 * noise
    assert torch.equal(out[..., :2], z_orig[..., :2])
    assert torch.allclose(out[..., 3:], expected[..., 3:], atol=1e-5)
    assert torch.allclose(out[..., 2], 0.5 * expected[..., 2] + 0.5 * z_orig[..., 2], atol=1e-5)


def test_the_result_keeps_the_noise_level_of_t():
    """With a consistent epsilon, z = sqrt(a_t) x0 + sqrt(1 - a_t) n' where n' is unit Gaussian again."""
    gen = torch.Generator().manual_seed(1)
    x0, eps, noise = (torch.randn(1, 4, 128, 128, generator=gen) for _ in range(3))
    a_t, a_l = _abar(681), _abar(661)
    z = a_t.sqrt() * x0 + (1 - a_t).sqrt() * eps
    out = adapt_latent(z, eps, z, a_t, a_l, torch.ones(1, 1, 128, 128), noise)
    residual = (out - a_t.sqrt() * x0) / (1 - a_t).sqrt()
    assert abs(float(residual.std()) - 1.0) < 0.02
    assert float((residual - eps).abs().mean()) > 0.1  # fresh noise entered
