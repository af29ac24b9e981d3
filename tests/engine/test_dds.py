"""The DDS regulariser: zero when both adapters agree, the authors' scale, and gradients into the edited adapter only."""
from __future__ import annotations

import pytest
import torch

from dragedit.engine.dds import dds_gradient, dds_loss
from dragedit.engine.ddim import predict_x0
from dragedit.engine.features import UNetRunner
from dragedit.engine.lora import add_lora, load_lora_state, lora_parameters, lora_state
from dragedit.engine.models import load_model


@pytest.fixture(scope="module")
def two_adapters(tiny_model_dir):
    """A tiny model with adapters "ref" (non-trivial weights) and "edit" (an exact copy of it)."""
    model = load_model(str(tiny_model_dir), "cpu", "fp32")
    unet = model.unet
    add_lora(unet, "ref", 4, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    for param in lora_parameters(unet, "ref"):
        param.data = torch.randn(param.shape, generator=gen) * 0.2  # B is zero at init: make the adapter matter
    load_lora_state(unet, "edit", lora_state(unet, "ref"), 4)
    runner = UNetRunner(unet, (8, 8))
    yield model, runner
    runner.close()


def _use(unet):
    return lambda name: unet.set_adapter(name)


def test_dds_gradient_is_zero_when_both_adapters_are_equal(two_adapters):
    model, runner = two_adapters
    emb = model.encode_prompt("")
    x0 = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    grad = dds_gradient(runner, model.scheduler, x0, emb, torch.Generator().manual_seed(3), _use(model.unet), "ref", "edit")
    assert grad.shape == x0.shape
    assert torch.count_nonzero(grad) == 0
    assert model.unet.active_adapters() == ["edit"]


def test_dds_gradient_is_nonzero_when_the_edited_adapter_differs(two_adapters):
    model, runner = two_adapters
    unet = model.unet
    emb = model.encode_prompt("")
    saved = lora_state(unet, "edit")
    try:
        for param in lora_parameters(unet, "edit"):
            param.data = param.data * 1.5
        x0 = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
        grad = dds_gradient(runner, model.scheduler, x0, emb, torch.Generator().manual_seed(3), _use(unet), "ref", "edit")
        assert grad.abs().max() > 1e-6
        again = dds_gradient(runner, model.scheduler, x0, emb, torch.Generator().manual_seed(3), _use(unet), "ref", "edit")
        assert torch.equal(grad, again)  # tau and the noise come from the generator
    finally:
        load_lora_state(unet, "edit", saved, 4)


def test_dds_loss_has_the_gradient_of_the_authors_mean_squared_form():
    gen = torch.Generator().manual_seed(4)
    x0_hat = torch.randn(1, 4, 8, 8, generator=gen, requires_grad=True)
    gradient = torch.randn(1, 4, 8, 8, generator=gen)
    dds_loss(x0_hat, gradient, 50.0).backward()
    ours = x0_hat.grad.clone()
    x0_hat.grad = None
    target = (x0_hat - gradient).detach()
    (0.5 * 50.0 * torch.nn.functional.mse_loss(x0_hat, target)).backward()
    assert torch.allclose(ours, x0_hat.grad, atol=1e-7)
    assert torch.allclose(ours, 50.0 * gradient / gradient.numel())


def test_dds_reaches_the_edited_adapter_through_x0_hat_despite_adapter_switching(two_adapters):
    model, runner = two_adapters
    unet = model.unet
    emb = model.encode_prompt("")
    saved = lora_state(unet, "edit")
    edit_params, ref_params = lora_parameters(unet, "edit"), lora_parameters(unet, "ref")
    try:
        for param in edit_params:
            param.data = param.data * 1.5
        unet.set_adapter("edit")  # peft: the active adapter is the trainable one
        z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
        t = 681
        x0_hat = predict_x0(z, runner.eps(z, t, emb), model.scheduler.alphas_cumprod[t])
        grad = dds_gradient(runner, model.scheduler, x0_hat, emb, torch.Generator().manual_seed(6), _use(unet), "ref", "edit")
        dds_loss(x0_hat, grad, 50.0).backward()
        assert all(p.grad is None for p in ref_params)
        assert sum(float(p.grad.abs().sum()) for p in edit_params if p.grad is not None) > 0
    finally:
        for param in edit_params + ref_params:
            param.grad = None
        load_lora_state(unet, "edit", saved, 4)
