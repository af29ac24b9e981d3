"""No quality change from the speed optimisations: tiny-model outputs with and without each one agree.

Each test also checks that the optimisation was really in effect in the optimised run (pass
counts, cache hits), so a silently disabled optimisation cannot pass as "no change".
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dragedit.engine import DragRequest, Engine, EngineSettings, JobCancelled
from dragedit.engine.ddim import alpha_bar, ddim_step, timesteps
from dragedit.engine.denoise import denoise_mutual
from dragedit.engine.features import UNetRunner
from dragedit.engine.lora import activate_adapter, add_lora, lora_parameters
from dragedit.engine.mutual_attention import MutualAttentionState, mutual_attention
from tests.method_params import same_edit

# Few steps so each run takes seconds on a CPU; everything else is the published default.
SHORT = {"lora_steps": 2, "lora_batch": 1, "inversion_strength": 0.1}
FAST = {
    "dragdiffusion": {**SHORT, "drag_steps": 3},
    "gooddrag": {**SHORT, "operations": 3, "operations_per_step": 2, "gradient_steps": 1},
    "stabledrag": {**SHORT, "drag_steps": 3, "tracker_iterations": 20},
    "draglora": {**SHORT, "drag_steps": 3, "k_ini": 1},
}


def _request(method: str, masked: bool = True, image_seed: int = 0, **extra) -> DragRequest:
    rng = np.random.default_rng(image_seed)
    image = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
    image[..., 3] = 255
    mask = None
    if masked:
        mask = np.zeros((64, 64), np.uint8)
        mask[12:52, 8:56] = 255
    return DragRequest(image=image, mask=mask, points=[((24.0, 30.0), (40.0, 34.0))], method=method,
                       params={**FAST[method], **extra}, seed=5)


def _engine(model_dir, cache_dir) -> Engine:
    return Engine(EngineSettings(model=str(model_dir), work_size=64, cache_dir=str(cache_dir)))


def _assert_same_edit(a, b) -> None:
    difference = np.abs(a.image.astype(int) - b.image.astype(int))
    assert same_edit(a.image, b.image), f"images differ by up to {difference.max()} levels"
    assert np.allclose(a.handles, b.handles, atol=0.5)


@pytest.mark.parametrize("method", ["dragdiffusion", "gooddrag", "stabledrag"])
def test_feature_only_passes_give_the_same_edit_as_full_passes(tiny_model_dir, tmp_path, monkeypatch, method):
    engine = _engine(tiny_model_dir, tmp_path / "cache")
    request = _request(method, mask_weight=0.0)  # without the mask loss these methods need no epsilon in the drag
    optimised = engine.run(request)
    assert optimised.stats["unet_feature_forward"] > 0

    def full_pass_features(self, z, t, emb, resize=True):
        return self.eps_and_features(z, t, emb, resize)[1]

    monkeypatch.setattr(UNetRunner, "features", full_pass_features)
    plain = engine.run(request)
    assert plain.stats["unet_feature_forward"] == 0
    assert plain.stats["unet_forward"] >= optimised.stats["unet_feature_forward"]  # each became a full pass
    _assert_same_edit(optimised, plain)


@pytest.mark.parametrize("method", sorted(FAST))
def test_cached_runs_give_the_same_edit_as_an_uncached_one(tiny_model_dir, tmp_path, method):
    engine = _engine(tiny_model_dir, tmp_path / "cache")
    request = _request(method)
    cold = engine.run(request)
    assert not any(cold.cache_hits.values())
    warm = engine.run(request)  # RecLoRA left in the UNet, inversion and derived values from memory
    assert warm.cache_hits == {"lora": True, "inversion": True}
    assert warm.stats["unet_backward"] < cold.stats["unet_backward"]  # no RecLoRA training this time
    _assert_same_edit(cold, warm)


@pytest.mark.parametrize("method", ["dragdiffusion", "gooddrag", "draglora"])
def test_cached_reference_row_gives_the_same_edit_with_fewer_rows(tiny_model_dir, tmp_path, method):
    """A repeated drag replays the original row's mutual-attention keys/values instead of recomputing it."""
    engine = _engine(tiny_model_dir, tmp_path / "cache")
    request = _request(method)
    engine.run(request)
    assert len(engine.reference_memory) == 1
    hits = engine.reference_memory.hits
    replayed = engine.run(request)
    assert engine.reference_memory.hits == hits + 1
    engine.reference_memory.clear()
    recomputed = engine.run(request)
    assert len(engine.reference_memory) == 1
    _assert_same_edit(replayed, recomputed)
    if method == "draglora":  # its reference row is a pass of its own: one pass fewer per denoising step
        steps = round(len(engine.model.scheduler.timesteps) * SHORT["inversion_strength"])  # denoising steps
        assert recomputed.stats["unet_forward"] - replayed.stats["unet_forward"] == steps


def test_reconstruction_lora_is_reloaded_after_another_image_or_a_cancelled_training(tiny_model_dir, tmp_path):
    engine = _engine(tiny_model_dir, tmp_path / "cache")
    first = engine.run(_request("dragdiffusion"))
    restarted = _engine(tiny_model_dir, tmp_path / "cache").run(_request("dragdiffusion"))
    assert restarted.cache_hits == {"lora": True, "inversion": False}  # RecLoRA read back from disk
    _assert_same_edit(first, restarted)

    events: list = []

    def cancel_during_training() -> bool:
        return bool(events) and events[-1].phase == "lora" and events[-1].step >= 1

    with pytest.raises(JobCancelled):  # a half-trained adapter for another image is left in the UNet
        engine.run(_request("dragdiffusion", image_seed=1), events.append, cancel_during_training)
    assert events[-1].phase == "lora" and not events[-1].cached
    after_cancel = engine.run(_request("dragdiffusion"))
    assert after_cancel.cache_hits["lora"]
    _assert_same_edit(first, after_cancel)

    engine.run(_request("dragdiffusion", image_seed=2))  # another image's RecLoRA now in the UNet
    after_other = engine.run(_request("dragdiffusion"))
    assert after_other.cache_hits["lora"]
    _assert_same_edit(first, after_other)


@pytest.fixture(scope="module")
def model_with_two_adapters(tiny_model_dir):
    """The tiny model with two different non-trivial adapters, "recon" and "drag"."""
    from dragedit.engine.models import load_model

    model = load_model(str(tiny_model_dir))
    generator = torch.Generator().manual_seed(11)
    for name in ("recon", "drag"):
        add_lora(model.unet, name, 4, generator)
        for param in lora_parameters(model.unet, name):
            if "lora_B" in param_name(model.unet, param):
                param.data = 0.3 * torch.randn(param.shape, generator=generator)
    return model


def param_name(module: torch.nn.Module, wanted: torch.nn.Parameter) -> str:
    return next(n for n, p in module.named_parameters() if p is wanted)


def _latents(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An "original" and an "edited" latent at the tiny model's size."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, 4, 16, 16, generator=generator), torch.randn(1, 4, 16, 16, generator=generator)


def _denoise(model, original, edited, switch=None) -> tuple[torch.Tensor, int]:
    """The engine's mutual-attention denoising over the last 10 steps: (edited latent, UNet passes)."""
    runner = UNetRunner(model.unet, (32, 32))
    try:
        latent = denoise_mutual(runner, model.scheduler, original, edited, model.encode_prompt(""),
                                timesteps(model.scheduler)[40:], use_reference_adapter=switch)
    finally:
        runner.close()
    return latent, runner.counter.full


def test_one_unet_switching_named_adapters_equals_a_second_unet(model_with_two_adapters):
    model = model_with_two_adapters
    unet, scheduler = model.unet, model.scheduler
    original, edited = _latents(1)
    switched, _ = _denoise(model, original, edited, lambda ref: activate_adapter(unet, "recon" if ref else "drag"))

    # The reference code's way: a second full UNet for the edited branch.
    reference_unet, edit_unet = copy.deepcopy(unet), copy.deepcopy(unet)
    reference_unet.set_adapter("recon")
    edit_unet.set_adapter("drag")
    emb = model.encode_prompt("")
    state = MutualAttentionState()
    orig, edit = original, edited
    with torch.no_grad(), mutual_attention(reference_unet, state), mutual_attention(edit_unet, state):
        for t in timesteps(scheduler)[40:]:
            state.mode = "record"
            eps_orig = reference_unet(orig, t, encoder_hidden_states=emb).sample
            state.mode = "replay"
            eps_edit = edit_unet(edit, t, encoder_hidden_states=emb).sample
            a_t, a_prev = alpha_bar(scheduler, t), alpha_bar(scheduler, t - 20)
            orig, edit = ddim_step(orig, eps_orig, a_t, a_prev), ddim_step(edit, eps_edit, a_t, a_prev)
    assert torch.allclose(switched, edit, atol=1e-5)

    activate_adapter(unet, "recon")  # the check can fail: one adapter for both rows gives another result
    same_adapter, _ = _denoise(model, original, edited)
    assert not torch.allclose(same_adapter, edit, atol=1e-3)


def test_record_replay_denoise_equals_batch_denoise(model_with_two_adapters):
    model = model_with_two_adapters
    original, edited = _latents(2)
    activate_adapter(model.unet, "recon")
    batched, batch_passes = _denoise(model, original, edited)
    replayed, replay_passes = _denoise(model, original, edited, lambda ref: activate_adapter(model.unet, "recon"))
    assert (batch_passes, replay_passes) == (10, 20)  # one batch [original, edited] per step, or two passes
    assert torch.allclose(batched, replayed, atol=1e-5)


@pytest.mark.parametrize("name,trainable", [("drag", True), ("recon", False), (None, False), ("drag", False)])
def test_fast_adapter_switch_equals_the_unet_wide_switch(model_with_two_adapters, name, trainable):
    unet = model_with_two_adapters.unet
    emb = model_with_two_adapters.encode_prompt("")
    z, _ = _latents(3)
    activate_adapter(unet, "recon" if name == "drag" else "drag", trainable=True)  # start from another state
    activate_adapter(unet, name, trainable)
    with torch.no_grad():
        fast = unet(z, 500, encoder_hidden_states=emb).sample
    for adapter in ("recon", "drag"):
        wanted = trainable and adapter == name
        assert all(p.requires_grad == wanted for p in lora_parameters(unet, adapter))

    if name is None:  # diffusers' model-wide calls, which walk every module
        unet.disable_adapters()
    else:
        unet.enable_adapters()
        unet.set_adapter(name)
    with torch.no_grad():
        reference = unet(z, 500, encoder_hidden_states=emb).sample
    assert torch.equal(fast, reference)


def test_switching_to_a_missing_adapter_is_an_error(model_with_two_adapters):
    with pytest.raises(ValueError, match="no adapter named 'nope'"):
        activate_adapter(model_with_two_adapters.unet, "nope")
