"""Building blocks that need a UNet: inversion, mutual attention, feature-only passes, LoRA."""
from __future__ import annotations

import pytest
import torch

from dragedit.engine.ddim import alpha_bar, ddim_step, start_index, timesteps
from dragedit.engine.features import UNetRunner
from dragedit.engine.inversion import ddim_invert
from dragedit.engine.lora import add_lora, lora_parameters, lora_state, load_lora_state, read_lora, save_lora
from dragedit.engine.mutual_attention import MutualAttentionState, mutual_attention, mutual_layer_names


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from dragedit.engine.models import load_model

    return load_model(str(tiny_model_dir))


@pytest.fixture()
def runner(model):
    r = UNetRunner(model.unet, (32, 32))
    yield r
    r.close()


def _denoise(runner, scheduler, z, emb, steps):
    with torch.no_grad():
        for t in steps:
            z = ddim_step(z, runner.eps(z, t, emb), alpha_bar(scheduler, t), alpha_bar(scheduler, t - 20))
    return z


@pytest.mark.parametrize("strength,tolerance", [(0.2, 0.02), (0.7, 0.1)])
def test_inversion_then_denoising_reconstructs_the_latent(model, runner, strength, tolerance):
    emb = model.encode_prompt("")
    z0 = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    steps = timesteps(model.scheduler)[start_index(strength):]
    trajectory = ddim_invert(runner, model.scheduler, z0, emb, list(reversed(steps)))
    assert sorted(trajectory) == sorted(steps)
    rebuilt = _denoise(runner, model.scheduler, trajectory[steps[0]], emb, steps)
    error = ((rebuilt - z0).norm() / z0.norm()).item()
    assert error < tolerance
    other = _denoise(runner, model.scheduler, torch.randn_like(z0), emb, steps)
    assert ((other - z0).norm() / z0.norm()).item() > 5 * error  # the check can fail


def test_mutual_attention_is_identity_when_reference_equals_edited(model):
    emb = model.encode_prompt("").expand(2, -1, -1)
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1)).expand(2, -1, -1, -1)
    with torch.no_grad():
        plain = model.unet(z, 500, encoder_hidden_states=emb).sample
        with mutual_attention(model.unet, MutualAttentionState()):
            mutual = model.unet(z, 500, encoder_hidden_states=emb).sample
        different = torch.cat([z[:1], torch.randn_like(z[:1])])
        with mutual_attention(model.unet, MutualAttentionState()):
            changed = model.unet(different, 500, encoder_hidden_states=emb).sample
        alone = model.unet(different, 500, encoder_hidden_states=emb).sample
    assert torch.allclose(plain, mutual, atol=1e-5)
    assert not torch.allclose(changed[1], alone[1], atol=1e-3)  # the edited row does see the reference
    assert torch.allclose(changed[0], alone[0], atol=1e-5)  # the reference row is untouched


def test_mutual_attention_layers_are_self_attention_of_late_up_blocks(model):
    names = mutual_layer_names(model.unet)
    assert names and all(".attn1." in n and n.split(".")[1] in ("2", "3") for n in names)
    processors_before = dict(model.unet.attn_processors)
    with mutual_attention(model.unet, MutualAttentionState()):
        pass
    assert {k: type(v) for k, v in model.unet.attn_processors.items()} == {k: type(v) for k, v in processors_before.items()}


def test_record_replay_equals_batch_mode(model):
    emb = model.encode_prompt("")
    gen = torch.Generator().manual_seed(2)
    ref, edit = torch.randn(1, 4, 16, 16, generator=gen), torch.randn(1, 4, 16, 16, generator=gen)
    state = MutualAttentionState()
    with torch.no_grad(), mutual_attention(model.unet, state):
        state.mode = "batch"
        both = model.unet(torch.cat([ref, edit]), 300, encoder_hidden_states=emb.expand(2, -1, -1)).sample
        state.mode = "record"
        model.unet(ref, 300, encoder_hidden_states=emb)
        state.mode = "replay"
        replayed = model.unet(edit, 300, encoder_hidden_states=emb).sample
    assert torch.allclose(both[1:], replayed, atol=1e-5)


def test_feature_only_pass_matches_full_pass_and_skips_the_rest(model, runner):
    emb = model.encode_prompt("")
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    calls = []
    hook = model.unet.conv_out.register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            _, full = runner.eps_and_features(z, 400, emb)
            assert len(calls) == 1
            only = runner.features(z, 400, emb)
            assert len(calls) == 1  # conv_out never ran
    finally:
        hook.remove()
    assert full.shape == (1, model.unet.config.block_out_channels[1], 32, 32)
    assert torch.allclose(full, only, atol=1e-6)
    assert runner.counter.full == 1 and runner.counter.feature_only == 1


def test_feature_only_pass_keeps_the_gradient(model, runner):
    emb = model.encode_prompt("")
    z = torch.randn(1, 4, 16, 16, requires_grad=True)
    runner.features(z, 400, emb).square().mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_lora_adapter_trains_saves_and_loads(model, runner, tmp_path):
    from dragedit.engine.latents import Posterior
    from dragedit.engine.lora import train_reconstruction_lora

    emb = model.encode_prompt("")
    z0 = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    state = train_reconstruction_lora(runner, model.scheduler, Posterior(z0, torch.full_like(z0, 0.1)), emb, "recon",
                                      4, 3, 1e-3, 2, torch.Generator().manual_seed(0))
    assert state and all(("lora_A" in k or "lora_B" in k) for k in state)
    assert all(v.dtype == torch.float32 for v in state.values())
    assert any(v.abs().sum() > 0 for k, v in state.items() if "lora_B" in k)  # B left its zero init
    assert not any(p.requires_grad for p in lora_parameters(model.unet, "recon"))
    with torch.no_grad():
        trained = model.unet(z0, 500, encoder_hidden_states=emb).sample
    save_lora(state, tmp_path / "a.safetensors")
    add_lora(model.unet, "recon", 4)  # fresh adapter: B = 0, so the base model's output
    with torch.no_grad():
        fresh = model.unet(z0, 500, encoder_hidden_states=emb).sample
        model.unet.disable_adapters()
        base = model.unet(z0, 500, encoder_hidden_states=emb).sample
        model.unet.enable_adapters()
    assert torch.allclose(fresh, base, atol=1e-6) and not torch.allclose(trained, base, atol=1e-6)
    load_lora_state(model.unet, "recon", read_lora(tmp_path / "a.safetensors"), 4)
    with torch.no_grad():
        again = model.unet(z0, 500, encoder_hidden_states=emb).sample
    assert torch.allclose(again, trained, atol=1e-6)
    copied = lora_state(model.unet, "recon")
    assert set(copied) == set(state)


def test_active_adapter_takes_no_gradient_unless_trainable(model):
    from dragedit.engine.lora import activate_adapter

    add_lora(model.unet, "frozen", 2, torch.Generator().manual_seed(0))
    activate_adapter(model.unet, "frozen")
    assert not any(p.requires_grad for p in lora_parameters(model.unet, "frozen"))
    z = torch.randn(1, 4, 16, 16, requires_grad=True)
    model.unet(z, 300, encoder_hidden_states=model.encode_prompt("")).sample.mean().backward()
    assert z.grad is not None
    assert all(p.grad is None for p in lora_parameters(model.unet, "frozen"))
    activate_adapter(model.unet, "frozen", trainable=True)
    assert all(p.requires_grad for p in lora_parameters(model.unet, "frozen"))
    model.unet.delete_adapters("frozen")
