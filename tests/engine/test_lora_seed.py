"""A LoRA adapter's random init follows the job's generator, not the process's global RNG."""
from __future__ import annotations

import torch

from dragedit.engine.lora import add_lora, lora_state
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
