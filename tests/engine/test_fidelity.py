"""Where the engine follows the authors' code more precisely than the papers (METHODS.md): the latent
mask, a request without a mask, GoodDrag's loss weight and the RecLoRA's training data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dragedit.engine import DragRequest, Engine, EngineSettings
from dragedit.engine import engine as engine_module
from dragedit.engine.latents import Posterior
from dragedit.engine.lora import train_reconstruction_lora
from dragedit.engine.losses import motion_loss
from dragedit.methods import dragdiffusion, gooddrag
from dragedit_protocol.regions import region_around_points

SIZE = 64  # the tiny model's working size here: latent 16 x 16 (VAE factor 4), supervision 32 x 32


class Stop(Exception):
    """Ends a run once the spied value is captured."""


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tmp_path_factory):
    torch.set_num_threads(1)
    return Engine(EngineSettings(model=str(tiny_model_dir), device="cpu", work_size=SIZE,
                                 cache_dir=str(tmp_path_factory.mktemp("fidelity-cache"))))


def _image() -> np.ndarray:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint8)
    image[..., 3] = 255
    return image


POINTS = [((22.0, 30.0), (38.0, 30.0))]


def _latent_mask(engine, monkeypatch, mask: np.ndarray | None) -> tuple[torch.Tensor, bool]:
    """The latent mask and has_mask a method receives for a request (the run stops there)."""
    seen = {}

    def spy(ctx, mask_weight):
        seen["mask"], seen["has_mask"] = ctx.editable.clone(), ctx.has_mask
        raise Stop

    monkeypatch.setattr(dragdiffusion, "start_latent_drag", spy)
    with pytest.raises(Stop):
        engine.run(DragRequest(_image(), POINTS, "dragdiffusion", {"lora_steps": 0, "inversion_strength": 0.1},
                               mask=mask, seed=1))
    return seen["mask"][0, 0], seen["has_mask"]


def test_the_latent_mask_is_binary_any_selected_pixel_then_nearest_of_nearest(engine, monkeypatch):
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[13:43, 9:51] = 255
    mask[43:47, 9:51] = 60  # a soft edge: selected a little, so editable (> 0)
    mask[5:13, 30] = 1  # a one-pixel line: editable where a sample falls on it
    latent, has_mask = _latent_mask(engine, monkeypatch, mask)
    assert set(latent.unique().tolist()) == {0.0, 1.0}
    # nearest to half size picks every 2nd pixel, nearest again every 2nd of those: every 4th
    expected = torch.from_numpy((mask > 0)[::4, ::4].astype(np.float32))
    assert torch.equal(latent, expected) and has_mask
    assert latent[11, 3] == 1  # row 44 (the soft edge) is editable


def test_a_request_without_a_mask_edits_the_default_region_around_the_points(engine, monkeypatch):
    latent, has_mask = _latent_mask(engine, monkeypatch, None)
    region = np.frombuffer(region_around_points(POINTS, SIZE, SIZE), np.uint8).reshape(SIZE, SIZE)
    expected = torch.from_numpy((region > 0)[::4, ::4].astype(np.float32))
    assert torch.equal(latent, expected)
    assert has_mask and 0 < latent.mean() < 1  # not the whole image: the mask loss keeps the rest


def test_a_selection_too_thin_for_the_latent_is_a_clear_error(engine):
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[:, 1] = 255  # falls between the nearest samples (columns 0, 4, 8, ...)
    with pytest.raises(Exception) as error:
        engine.run(DragRequest(_image(), POINTS, "dragdiffusion", {"lora_steps": 0}, mask=mask, seed=1))
    assert getattr(error.value, "code", None) == "mask_too_small"


def test_gooddrag_weighs_the_motion_loss_by_2r1_squared(engine, monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        loss = motion_loss(*args, **kwargs)
        calls.append((args, kwargs, loss.detach()))
        return loss

    monkeypatch.setattr(gooddrag, "motion_loss", spy)
    params = {"lora_steps": 0, "operations": 2, "operations_per_step": 2, "gradient_steps": 1, "r1": 1,
              "inversion_strength": 0.3}
    engine.run(DragRequest(_image(), POINTS, "gooddrag", params, mask=None, seed=1))
    assert calls
    for args, kwargs, loss in calls:
        unweighted = {k: v for k, v in kwargs.items() if k != "patch_weight"}
        dragdiffusion_weighted = motion_loss(*args, **unweighted)  # (2 r1 + 1)^2 = 9
        assert loss.item() == pytest.approx(dragdiffusion_weighted.item() * 4 / 9, rel=1e-6)
        assert loss.item() > 0


def test_reclora_trains_on_a_fresh_posterior_draw_every_step(tiny_model_dir):
    from dragedit.engine.features import UNetRunner
    from dragedit.engine.models import load_model

    model = load_model(str(tiny_model_dir), "cpu", "fp32")
    draws = []

    class Recording(Posterior):
        def sample(self, batch, generator):
            draws.append(super().sample(batch, generator))
            return draws[-1]

    mean = torch.zeros(1, 4, 16, 16)
    runner = UNetRunner(model.unet, (32, 32))
    try:
        train_reconstruction_lora(runner, model.scheduler, Recording(mean, torch.full_like(mean, 0.5)),
                                  model.encode_prompt(""), "recon", 4, 3, 1e-3, 2, torch.Generator().manual_seed(0))
    finally:
        runner.close()
    assert len(draws) == 3 and all(d.shape == (2, 4, 16, 16) for d in draws)
    assert not torch.equal(draws[0][0], draws[0][1]) and not torch.equal(draws[0], draws[1])
    assert draws[0].std().item() == pytest.approx(0.5, rel=0.1)


def test_the_engine_gives_the_reclora_the_vae_posterior(engine, monkeypatch):
    seen = {}

    def spy(runner, scheduler, posterior, *args, **kwargs):
        seen["posterior"] = posterior
        raise Stop

    monkeypatch.setattr(engine_module, "train_reconstruction_lora", spy)
    with pytest.raises(Stop):
        engine.run(DragRequest(_image(), POINTS, "dragdiffusion", {"lora_steps": 2, "inversion_strength": 0.1},
                               seed=1))
    posterior = seen["posterior"]
    assert isinstance(posterior, Posterior) and posterior.std.min() > 0
