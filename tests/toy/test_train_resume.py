"""`python -m dragedit.toy.train` stops and continues: a resumed run gives the weights of an unbroken one."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dragedit.toy import train
from dragedit.toy.train_state import STATE_FILE

TINY = ["--images", "6", "--vae-steps", "5", "--unet-steps", "5", "--decoder-steps", "4", "--threads", "1",
        "--checkpoint-every", "0", "--no-bar"]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for part in ("unet", "vae"):
        out |= {f"{part}.{k}": v for k, v in load_file(folder / part / "diffusion_pytorch_model.safetensors").items()}
    return out


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("unbroken")
    assert train.main(["--out", str(folder), *TINY]) == 0
    return folder


@pytest.mark.parametrize("sittings", [(3, 4, None), (5, 5, None), (12, None)],
                         ids=["mid-vae-then-mid-unet", "at-stage-starts", "mid-decoder"])
def test_a_run_stopped_and_resumed_gives_the_unbroken_weights(tmp_path, unbroken, sittings):
    """Stopped inside the VAE stage, inside the UNet stage, at the first step of a stage, and inside the
    decoder stage, then resumed: the same weights, bit for bit, as the run that never stopped."""
    for i, steps in enumerate(sittings):
        extra = ([] if steps is None else ["--stop-after-steps", str(steps)]) + (["--resume"] if i else [])
        assert train.main(["--out", str(tmp_path), *TINY, *extra]) == 0
        assert (tmp_path / STATE_FILE).is_file() == (steps is not None)
    expected, got = _weights(unbroken), _weights(tmp_path)
    assert expected.keys() == got.keys()
    differing = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert not differing, differing[:5]
    assert json.loads((tmp_path / "training.json").read_text())["resumed"] is True
    assert not (tmp_path / STATE_FILE).exists()  # the finished model folder holds no training state


def test_resume_needs_the_same_recipe_and_a_state(tmp_path, capsys):
    assert train.main(["--out", str(tmp_path), *TINY, "--resume"]) == 2
    assert "no train-state.safetensors" in capsys.readouterr().err
    assert train.main(["--out", str(tmp_path), *TINY, "--stop-after-steps", "2"]) == 0
    changed = [a if a != "5" else "6" for a in TINY]
    assert train.main(["--out", str(tmp_path), *changed, "--resume"]) == 2
    assert "resume it with those options" in capsys.readouterr().err
    assert train.main(["--out", str(tmp_path), *TINY]) == 2  # would silently throw the unfinished run away
    assert "continue it with --resume" in capsys.readouterr().err


def test_the_minutes_budget_stops_and_writes_the_state(tmp_path):
    assert train.main(["--out", str(tmp_path), *TINY, "--minutes", "0"]) == 0
    state = (tmp_path / STATE_FILE)
    assert state.is_file() and not (tmp_path / "training.json").exists()


def test_widths_are_options_and_the_unet_keeps_four_blocks():
    assert train.unet_config((64, 64, 128, 128))["block_out_channels"] == (64, 64, 128, 128)
    with pytest.raises(ValueError, match="4 widths"):
        train.unet_config((32, 64, 64))
    assert len(train.vae_config((64, 128, 128))["down_block_types"]) == 3


def test_a_decoder_refinement_changes_only_the_decoder_and_is_recorded(tmp_path, unbroken):
    """`--only-decoder` on a finished model: the encoder (so the latent space) and the UNet stay bit for
    bit, the decoder learns, and training.json keeps the first run and adds the refinement's command."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(unbroken, folder)
    argv = ["--out", str(folder), "--only-decoder", "--decoder-steps", "3", "--images", "6", "--threads", "1",
            "--no-bar"]
    assert train.main(argv) == 0
    before, after = _weights(unbroken), _weights(folder)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("vae.decoder.", "vae.post_quant_conv.")) for k in changed), sorted(changed)[:5]
    made = json.loads((folder / "training.json").read_text())
    assert made["unet_steps"] == 5  # the first run's record is kept
    (refinement,) = made["decoder_refinements"]
    assert refinement["decoder_steps"] == 3 and "--only-decoder --decoder-steps 3" in refinement["command"]


def test_the_latent_spread_sets_the_vaes_scaling_factor_and_is_part_of_the_recipe(tmp_path, unbroken):
    """`--latent-std 0.5` halves the scaling factor of the same VAE (so a timestep hides more of a scene),
    and a run made with it resumes only with it."""
    folder = tmp_path / "half"
    assert train.main(["--out", str(folder), *TINY, "--latent-std", "0.5"]) == 0
    factor = lambda f: json.loads((f / "vae" / "config.json").read_text())["scaling_factor"]  # noqa: E731
    assert factor(folder) == pytest.approx(factor(unbroken) / 2, rel=1e-5)
    assert json.loads((folder / "training.json").read_text())["latent_std"] == 0.5
    stopped = tmp_path / "stopped"
    assert train.main(["--out", str(stopped), *TINY, "--latent-std", "0.5", "--stop-after-steps", "2"]) == 0
    assert train.main(["--out", str(stopped), *TINY, "--resume"]) == 2


def test_a_new_unet_on_an_existing_models_vae(tmp_path, unbroken):
    """`--vae-from FOLDER --decoder-steps 0` keeps that model's VAE bit for bit (so its latent space and
    decoder), trains a new UNet on its latents, records where the VAE came from and how it was made, and
    resumes like any run."""
    argv = ["--out", str(tmp_path / "new"), "--vae-from", str(unbroken), "--images", "6", "--unet-steps", "4",
            "--decoder-steps", "0", "--threads", "1", "--checkpoint-every", "0", "--no-bar"]
    assert train.main(argv) == 0
    before, after = _weights(unbroken), _weights(tmp_path / "new")
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("vae."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("unet."))
    made = json.loads((tmp_path / "new" / "training.json").read_text())
    assert made["vae_from"] == str(unbroken) and made["vae_made_by"]["vae_steps"] == 5
    stopped = ["--out", str(tmp_path / "stopped"), *argv[2:]]
    assert train.main([*stopped, "--stop-after-steps", "2"]) == 0
    assert train.main([*stopped, "--resume"]) == 0
    assert all(torch.equal(after[k], v) for k, v in _weights(tmp_path / "stopped").items())


def test_whitening_the_latent_keeps_every_reconstruction_and_decorrelates_the_channels(unbroken):
    from diffusers import AutoencoderKL

    from dragedit.toy.scenes import random_images

    vae = AutoencoderKL.from_pretrained(unbroken, subfolder="vae").eval()
    images = train._to_tensor(random_images(6, seed=5, size=train.IMAGE_SIZE))
    with torch.no_grad():
        before = vae.decode(vae.encode(images).latent_dist.mean).sample
        train.whiten_latent_channels(vae, images)
        latents = vae.encode(images).latent_dist.mean
        after = vae.decode(latents).sample
    assert torch.allclose(before, after, atol=1e-4)
    channels = latents.transpose(0, 1).reshape(latents.shape[1], -1)
    assert torch.allclose(channels.mean(1), torch.zeros(4), atol=1e-4)
    assert torch.allclose(torch.cov(channels), torch.eye(4), atol=1e-3)


def test_whiten_latent_is_an_option_of_the_recipe(tmp_path, unbroken):
    argv = ["--out", str(tmp_path), "--vae-from", str(unbroken), "--whiten-latent", "--images", "6",
            "--unet-steps", "2", "--decoder-steps", "0", "--threads", "1", "--checkpoint-every", "0", "--no-bar"]
    assert train.main(argv) == 0
    assert json.loads((tmp_path / "training.json").read_text())["whiten_latent"] is True
    changed = {k for k, v in _weights(unbroken).items() if not torch.equal(v, _weights(tmp_path)[k])}
    assert {"vae.quant_conv.weight", "vae.post_quant_conv.weight"} <= changed
    assert not any(k.startswith(("vae.encoder.", "vae.decoder.")) for k in changed)
    stopped = ["--out", str(tmp_path / "stopped"), *argv[2:]]  # stopped inside the UNet stage
    assert train.main([*stopped, "--stop-after-steps", "1"]) == 0
    assert train.main([*stopped, "--resume"]) == 0
    whole = _weights(tmp_path)
    assert all(torch.equal(whole[k], v) for k, v in _weights(tmp_path / "stopped").items())
