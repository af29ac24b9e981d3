"""A single original-layout (LDM) .safetensors checkpoint loads offline and is the model it was made from."""
from __future__ import annotations

import pickle

import huggingface_hub.constants
import pytest
import torch
from safetensors.torch import load_file

from dragedit.cli import build_parser, engine_settings
from dragedit.engine import Engine
from dragedit.engine.api import EditError
from dragedit.engine.models import load_model

from ldm_layout import (TEXT_PREFIX, UNET_PREFIX, VAE_PREFIX, add_training_leftovers, copy_configs,
                        write_ldm_checkpoint)


@pytest.fixture(scope="module")
def checkpoint(tiny_model_dir, tmp_path_factory):
    """The tiny model as one LDM-layout checkpoint."""
    return write_ldm_checkpoint(tiny_model_dir, tmp_path_factory.mktemp("single") / "tiny-ldm.safetensors")


@pytest.fixture(scope="module")
def configs_only(tiny_model_dir, tmp_path_factory):
    """The tiny model's configs and tokenizer without weights: every weight must come from the checkpoint."""
    return copy_configs(tiny_model_dir, tmp_path_factory.mktemp("configs") / "tiny-configs")


@pytest.fixture(scope="module")
def both_models(tiny_model_dir, checkpoint, configs_only):
    folder = load_model(str(tiny_model_dir), device="cpu")
    single = load_model(str(checkpoint), device="cpu", config=str(configs_only))
    return folder, single


def test_checkpoint_is_in_the_original_layout(checkpoint, configs_only):
    """Names as an SD-1.5 file has them, for the tiny layout (one layer per level).

    diffusers' loader also accepts some names a real file never has, so loading alone does not prove them.
    """
    weights = load_file(checkpoint)
    assert all(k.startswith((UNET_PREFIX, VAE_PREFIX, TEXT_PREFIX)) for k in weights)
    expected = [
        f"{UNET_PREFIX}input_blocks.0.0.weight", f"{UNET_PREFIX}input_blocks.1.0.in_layers.2.weight",
        f"{UNET_PREFIX}input_blocks.2.0.op.weight", f"{UNET_PREFIX}middle_block.1.proj_in.weight",
        f"{UNET_PREFIX}middle_block.2.emb_layers.1.weight", f"{UNET_PREFIX}output_blocks.1.1.conv.weight",
        f"{UNET_PREFIX}output_blocks.3.2.conv.weight", f"{UNET_PREFIX}output_blocks.7.1.proj_out.weight",
        f"{VAE_PREFIX}decoder.up.2.upsample.conv.weight", f"{VAE_PREFIX}encoder.down.1.block.0.nin_shortcut.weight",
        f"{VAE_PREFIX}decoder.up.0.block.0.nin_shortcut.weight", f"{VAE_PREFIX}encoder.norm_out.weight",
        f"{TEXT_PREFIX}embeddings.position_embedding.weight", f"{TEXT_PREFIX}encoder.layers.1.mlp.fc2.weight",
    ]
    assert [k for k in expected if k not in weights] == []
    assert f"{VAE_PREFIX}decoder.up.0.upsample.conv.weight" not in weights  # LDM's level 0 is the full resolution
    assert weights[f"{VAE_PREFIX}decoder.mid.attn_1.q.weight"].shape == (32, 32, 1, 1)  # 1x1 conv, as LDM stores it
    assert not list(configs_only.rglob("*.safetensors"))


def test_weights_are_those_of_the_folder(both_models):
    folder, single = both_models
    for name in ("unet", "vae", "text_encoder"):
        expected, loaded = getattr(folder, name).state_dict(), getattr(single, name).state_dict()
        assert expected.keys() == loaded.keys(), name
        different = [k for k in expected if not torch.equal(expected[k], loaded[k])]
        assert not different, f"{name}: {different[:5]}"


@torch.no_grad()
def test_unet_output_matches_the_folder(both_models):
    folder, single = both_models
    generator = torch.Generator().manual_seed(1)
    latent = torch.randn(1, 4, 16, 16, generator=generator)
    context = torch.randn(1, 77, folder.unet.config.cross_attention_dim, generator=generator)
    expected = folder.unet(latent, 500, encoder_hidden_states=context).sample
    got = single.unet(latent, 500, encoder_hidden_states=context).sample
    assert expected.abs().max() > 0
    assert torch.allclose(expected, got, atol=1e-6)


@torch.no_grad()
def test_vae_output_matches_the_folder(both_models):
    folder, single = both_models
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    expected_latent = folder.vae.encode(image).latent_dist.mean
    got_latent = single.vae.encode(image).latent_dist.mean
    assert torch.allclose(expected_latent, got_latent, atol=1e-6)
    expected_image, got_image = folder.vae.decode(expected_latent).sample, single.vae.decode(expected_latent).sample
    assert torch.allclose(expected_image, got_image, atol=1e-6)


def test_text_encoder_output_matches_the_folder(both_models):
    folder, single = both_models
    expected, got = folder.encode_prompt("a red cat on a mat"), single.encode_prompt("a red cat on a mat")
    assert expected.shape == got.shape == (1, 77, 32)
    assert torch.allclose(expected, got, atol=1e-6)
    assert not torch.allclose(expected, folder.encode_prompt("a blue dog"))  # the prompt matters


def test_unpruned_checkpoint_loads_the_non_ema_weights(both_models, checkpoint, configs_only, tmp_path):
    folder, _ = both_models
    unpruned = add_training_leftovers(checkpoint, tmp_path / "unpruned.safetensors")
    model = load_model(str(unpruned), device="cpu", config=str(configs_only))
    expected = folder.unet.state_dict()
    assert all(torch.equal(tensor, expected[key]) for key, tensor in model.unet.state_dict().items())
    embeddings = model.text_encoder.get_input_embeddings().weight
    assert torch.equal(embeddings, folder.text_encoder.get_input_embeddings().weight)


def test_scheduler_is_the_methods_ddim(both_models):
    _, single = both_models
    cfg = single.scheduler.config
    assert (cfg.beta_schedule, cfg.steps_offset, cfg.set_alpha_to_one) == ("scaled_linear", 1, False)


def test_model_config_option_reaches_the_loader(both_models, checkpoint, configs_only, tmp_path):
    """dragedit serve --model FILE --model-config FOLDER: the option travels through the settings to the engine."""
    folder, _ = both_models
    args = build_parser().parse_args(["serve", "--model", str(checkpoint), "--model-config", str(configs_only),
                                      "--device", "cpu"])
    settings = engine_settings(args, tmp_path / "cache")
    assert settings.model_config == str(configs_only)
    model = Engine(settings).ensure_model()
    assert model.source == str(checkpoint)
    assert torch.equal(model.unet.conv_in.weight, folder.unet.conv_in.weight)


class _WouldRunCode:
    """Unpickling this creates a marker file: proof that a checkpoint was (wrongly) unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt"])
def test_pickled_checkpoint_is_refused_unread(tmp_path, configs_only, suffix):
    marker = tmp_path / "unpickled"
    ckpt = tmp_path / f"model{suffix}"
    ckpt.write_bytes(pickle.dumps({"state_dict": _WouldRunCode(marker)}))
    with pytest.raises(EditError) as err:
        load_model(str(ckpt), device="cpu", config=str(configs_only))
    assert err.value.code == "unsafe_model" and ".safetensors" in err.value.hint
    assert not marker.exists()


def test_missing_config_offline_says_pass_model_config(checkpoint, monkeypatch, tmp_path):
    # No network, and an empty cache: SD-1.5's configs downloaded on this machine before must not count.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    with pytest.raises(EditError) as err:
        load_model(str(checkpoint), device="cpu")
    assert err.value.code == "model_config" and "tiny-ldm.safetensors" in err.value.message
    assert "--model-config" in err.value.hint and "diffusers SD-1.5 folder" in err.value.hint


def test_config_folder_that_does_not_exist(checkpoint, tmp_path):
    with pytest.raises(EditError) as err:
        load_model(str(checkpoint), device="cpu", config=str(tmp_path / "typo"))
    assert err.value.code == "model_config" and "does not exist" in err.value.message
    assert "--model-config" in err.value.hint


def test_config_folder_that_is_not_a_diffusers_folder(checkpoint, tmp_path):
    with pytest.raises(EditError) as err:
        load_model(str(checkpoint), device="cpu", config=str(tmp_path))
    assert err.value.code == "model_config" and "model_index.json" in err.value.message
