"""--vae: a separate VAE (GoodDrag's authors decode with sd-vae-ft-mse) from a diffusers folder or a
single .safetensors file, loaded safetensors-only, for the engine and per job."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dragedit import cli
from dragedit.engine import DragRequest, EditError, Engine, EngineSettings
from dragedit.engine.models import LAYOUTS, load_model


@pytest.fixture(scope="module")
def other_vae(tmp_path_factory):
    """A tiny VAE of the tiny model's layout with other random weights: (module, folder, single file)."""
    from diffusers import AutoencoderKL

    folder = tmp_path_factory.mktemp("vae")
    torch.manual_seed(11)
    vae = AutoencoderKL(**LAYOUTS["tiny"]["vae"])
    vae.save_pretrained(folder / "diffusers", safe_serialization=True)
    single = folder / "other-vae.safetensors"
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(single))
    return vae, folder / "diffusers", single


def _same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("form", ["folder", "single_file", "model_folder"])
def test_the_vae_replaces_the_models_own(tiny_model_dir, other_vae, form):
    vae, folder, single = other_vae
    source = {"folder": folder, "single_file": single, "model_folder": tiny_model_dir}[form]
    model = load_model(str(tiny_model_dir), "cpu", "fp32", vae=str(source))
    own = load_model(str(tiny_model_dir), "cpu", "fp32")
    assert model.vae_source == str(source) and own.vae_source is None
    if form == "model_folder":  # a model folder's vae/ subfolder
        assert _same_weights(model.vae, own.vae)
    else:
        assert _same_weights(model.vae, vae) and not _same_weights(model.vae, own.vae)
    assert next(model.vae.parameters()).dtype == torch.float32 and not any(p.requires_grad for p in model.vae.parameters())


def test_a_pickled_or_missing_vae_is_a_clear_error(tiny_model_dir, tmp_path):
    pickled = tmp_path / "vae.ckpt"
    pickled.write_bytes(b"not loaded")
    with pytest.raises(EditError, match="pickled VAEs are never loaded") as error:
        load_model(str(tiny_model_dir), "cpu", "fp32", vae=str(pickled))
    assert error.value.code == "unsafe_model"
    with pytest.raises(EditError, match="does not exist"):
        load_model(str(tiny_model_dir), "cpu", "fp32", vae=str(tmp_path / "nope.safetensors"))
    with pytest.raises(EditError, match="could not be loaded") as error:
        load_model(str(tiny_model_dir), "cpu", "fp32", vae=str(tmp_path))  # a folder without a VAE
    assert "--vae" in error.value.hint


def test_jobs_use_the_engines_vae_or_their_own(tiny_model_dir, other_vae, tmp_path):
    vae, folder, single = other_vae
    engine = Engine(EngineSettings(model=str(tiny_model_dir), device="cpu", vae=str(folder), work_size=64,
                                   cache_dir=str(tmp_path / "cache")))
    image = np.random.default_rng(3).integers(0, 256, (64, 64, 4), dtype=np.uint8)
    request = DragRequest(image, [((20.0, 30.0), (36.0, 30.0))], "dragdiffusion",
                          {"lora_steps": 1, "drag_steps": 1, "inversion_strength": 0.1}, seed=1)
    first = engine.run(request)
    assert engine.describe()["vae"] == str(folder) and first.image.shape == image.shape
    assert _same_weights(engine.model.vae, vae)
    request.vae = str(single)  # the same weights from a single file: a job may name its own VAE
    second = engine.run(request)
    assert engine.model.vae_source == str(single)
    assert not second.cache_hits["lora"]  # a VAE is part of the cache key (it changes the latent)
    assert _same_weights(engine.model.vae, vae) and second.image.shape == image.shape


def test_the_cli_passes_vae_and_precision_to_the_engine(tmp_path):
    args = cli.build_parser().parse_args(["serve", "--vae", "stabilityai/sd-vae-ft-mse", "--precision", "authors"])
    settings = cli.engine_settings(args)
    assert (settings.vae, settings.dtype) == ("stabilityai/sd-vae-ft-mse", "authors")
    old_name = cli.build_parser().parse_args(["serve", "--dtype", "fp16"])
    assert cli.engine_settings(old_name).dtype == "fp16"
    edit = ["edit", "in.png", "--points", "1,1:2,2", "--method", "draglora", "--out", str(tmp_path / "o.png")]
    assert cli.main([*edit, "--vae", "some/vae"]) == cli.EXIT_USAGE  # only with --local
