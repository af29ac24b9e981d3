"""Model loading: the same code path a user's model takes, and clear errors when it cannot load."""
from __future__ import annotations

import shutil

import pytest

from dragedit.engine.api import EditError
from dragedit.engine.models import describe_source, load_model


def test_folder_loads_with_methods_scheduler(tiny_model_dir):
    model = load_model(str(tiny_model_dir), device="cpu")
    cfg = model.scheduler.config
    assert (cfg.beta_start, cfg.beta_end, cfg.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert cfg.clip_sample is False and cfg.set_alpha_to_one is False and cfg.steps_offset == 1
    assert model.vae_scale_factor == 4 and model.size_multiple == 32
    assert not any(p.requires_grad for p in model.unet.parameters())
    assert model.encode_prompt("a cat").shape[:2] == (1, 77)


def test_source_kinds(tmp_path):
    assert describe_source("toy") == "toy"
    assert describe_source(str(tmp_path)) == "folder"
    assert describe_source("model.safetensors") == "single_file"
    assert describe_source("someone/some-model") == "hub"


def test_folder_without_unet_says_what_a_model_folder_is(tmp_path):
    with pytest.raises(EditError) as err:
        load_model(str(tmp_path))
    assert err.value.code == "model_load" and "unet" in err.value.message and err.value.hint


def test_broken_weights_give_model_load_error(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(EditError) as err:
        load_model(str(broken))
    assert err.value.code == "model_load" and "could not be loaded" in err.value.message


def test_pickled_checkpoint_is_refused(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"\x80\x04pickle")
    with pytest.raises(EditError) as err:
        load_model(str(ckpt))
    assert err.value.code == "unsafe_model" and ".safetensors" in err.value.hint


def test_missing_single_file(tmp_path):
    with pytest.raises(EditError) as err:
        load_model(str(tmp_path / "nope.safetensors"))
    assert err.value.code == "model_load" and "does not exist" in err.value.message


def test_unreachable_hub_id_gives_a_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EditError) as err:
        load_model("dragedit-test/does-not-exist")
    assert err.value.code == "model_load" and "--model" in err.value.hint
