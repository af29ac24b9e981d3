"""Each method end to end through Engine.run on a tiny model, with a mask."""
from __future__ import annotations

import numpy as np
import pytest

from dragedit.engine import DragRequest, EditError, Engine, EngineSettings, JobCancelled
from dragedit.engine.images import blend_weights
from dragedit.methods import METHODS
from tests.method_params import FAST_PARAMS, masked_request, same_edit

def test_every_method_runs_end_to_end_here():
    assert set(FAST_PARAMS) == set(METHODS)


@pytest.fixture()
def engine(tiny_model_dir, tmp_path):
    """A fresh engine with empty caches (the RecLoRA is shared across methods with equal settings)."""
    return Engine(EngineSettings(model=str(tiny_model_dir), work_size=64, cache_dir=str(tmp_path / "cache")))


@pytest.mark.parametrize("method", sorted(FAST_PARAMS))
def test_method_end_to_end(engine, method):
    request = masked_request(method)
    events = []
    first = engine.run(request, events.append)
    weights = blend_weights(request.mask > 127, first_feather := METHODS[method].SPEC.resolve({})["feather"])
    assert first_feather > 0
    assert first.image.shape == request.image.shape and first.image.dtype == np.uint8
    assert np.array_equal(first.image[weights == 0], request.image[weights == 0])
    inside = request.mask > 127
    assert (first.image[inside] != request.image[inside]).mean() > 0.5
    assert first.cache_hits == {"lora": False, "inversion": False}
    phases = [e.phase for e in events]
    for phase in ("lora", "inversion", "drag", "denoise"):
        assert phase in phases
    assert any(e.preview is not None for e in events if e.phase == "drag")
    assert all(0 <= e.step <= e.total for e in events)
    assert first.stats["unet_backward"] > 0 and len(first.handles) == 1

    second = engine.run(request)
    assert second.cache_hits == {"lora": True, "inversion": True}
    assert engine.lora_disk.size_bytes() > 0
    assert same_edit(second.image, first.image)  # deterministic for a seed, cached or not
    assert second.timings["lora"] < first.timings["lora"]


def test_cancel_between_iterations(engine):
    calls = {"n": 0}

    def cancel_in_drag() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(JobCancelled):
        engine.run(masked_request("dragdiffusion", lora_steps=2), None, cancel_in_drag)


def test_unknown_method_and_parameter(engine):
    unknown = masked_request("dragdiffusion")
    unknown.method = "nope"
    with pytest.raises(EditError) as err:
        engine.run(unknown)
    assert err.value.code == "unknown_method" and "dragdiffusion" in err.value.hint
    with pytest.raises(EditError) as err:
        engine.run(masked_request("dragdiffusion", warp=3))
    assert err.value.code == "bad_param" and "warp" in err.value.message


def test_describe_publishes_every_method_schema(engine):
    info = engine.describe()
    names = {m["name"] for m in info["methods"]}
    assert names == set(METHODS)
    for method in info["methods"]:
        params = {p["name"]: p for p in method["params"]}
        assert {"inversion_strength", "lora_steps", "feather"} <= set(params)
        assert all("default" in p and "description" in p for p in params.values())


def test_default_work_size_is_the_models_native_size(tiny_model_dir, tmp_path):
    """No work size set: the engine works at the UNet's training size (64 px for the tiny model), and
    an image larger than that is scaled down to it, never up."""
    engine = Engine(EngineSettings(model=str(tiny_model_dir), cache_dir=str(tmp_path / "cache")))
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (96, 128, 4), dtype=np.uint8)
    params = dict(FAST_PARAMS["dragdiffusion"], drag_steps=1)
    result = engine.run(DragRequest(image=image, points=[((40.0, 40.0), (60.0, 44.0))], method="dragdiffusion",
                                    params=params, seed=1))
    assert engine.model.native_size == 64
    assert min(result.stats["work_size"]) == 64 and engine.describe()["work_size"] == 64
