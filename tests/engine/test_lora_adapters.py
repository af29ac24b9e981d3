"""LoRA adapters: a reproducible random init, and a new adapter always takes part in the forward pass."""
from __future__ import annotations

import torch

from dragedit.engine.lora import add_lora, lora_parameters, lora_state
from dragedit.engine.models import load_model


def test_seeded_adapter_init_is_reproducible_and_leaves_global_rng_alone(tiny_model_dir):
    unet = load_model(str(tiny_model_dir), "cpu", "fp32").unet
    before = torch.random.get_rng_state()
    add_lora(unet, "a", 4, torch.Generator().manual_seed(7))
    first = lora_state(unet, "a")
    torch.manual_seed(12345)  # a different global state must not matter
    add_lora(unet, "a", 4, torch.Generator().manual_seed(7))
    second = lora_state(unet, "a")
    add_lora(unet, "a", 4, torch.Generator().manual_seed(8))
    other = lora_state(unet, "a")
    a_keys = [k for k in first if "lora_A" in k]
    assert a_keys and all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in a_keys)
    torch.random.set_rng_state(before)
    add_lora(unet, "b", 4, torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), before)


def test_a_new_adapter_is_enabled_after_a_job_that_disabled_adapters(tiny_model_dir):
    unet = load_model(str(tiny_model_dir), "cpu", "fp32").unet
    add_lora(unet, "a", 4, torch.Generator().manual_seed(0))
    unet.disable_adapters()  # what the engine does for a job with lora_steps = 0
    add_lora(unet, "a", 4, torch.Generator().manual_seed(0))
    for param in lora_parameters(unet, "a"):
        param.data.fill_(0.05)
    z, emb = torch.randn(1, 4, 16, 16), torch.randn(1, 77, 32)
    with torch.no_grad():
        with_adapter = unet(z, 500, encoder_hidden_states=emb).sample
        unet.disable_adapters()
        base = unet(z, 500, encoder_hidden_states=emb).sample
    assert (with_adapter - base).abs().max() > 1e-4
