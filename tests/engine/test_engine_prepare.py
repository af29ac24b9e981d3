"""Engine.prepare: a drag of a prepared image finds its RecLoRA and inversion in the caches and gives
the same image as an unprepared drag."""
from __future__ import annotations

import numpy as np
import pytest

from dragedit.engine import Engine, EngineSettings, JobCancelled
from dragedit.engine.api import EditError, PrepareRequest
from tests.method_params import FAST_PARAMS, masked_request, same_edit


def _engine(tiny_model_dir, folder) -> Engine:
    return Engine(EngineSettings(model=str(tiny_model_dir), work_size=64, cache_dir=str(folder)))


def _prepare_for(request, method: str | None = None) -> PrepareRequest:
    return PrepareRequest(image=request.image, mask=request.mask, method=method,
                          params=request.params if method else {}, prompt=request.prompt)


@pytest.mark.parametrize("method", ["dragdiffusion", "gooddrag"])
def test_a_prepared_drag_hits_the_caches_and_gives_the_unprepared_image(tiny_model_dir, tmp_path, method):
    request = masked_request(method)
    unprepared = _engine(tiny_model_dir, tmp_path / "a").run(request)
    assert unprepared.cache_hits == {"lora": False, "inversion": False}

    engine = _engine(tiny_model_dir, tmp_path / "b")
    events = []
    prepared = engine.prepare(_prepare_for(request, method), events.append)
    assert prepared.cache_hits == {"lora": False, "inversion": False}
    steps = [e.step for e in events if e.phase == "prepare"]
    assert steps == sorted(steps) and steps[-1] == events[-1].total > 0
    dragged = engine.run(request)
    assert dragged.cache_hits == {"lora": True, "inversion": True}
    assert same_edit(dragged.image, unprepared.image)

    again = engine.prepare(_prepare_for(request, method))
    assert again.cache_hits == {"lora": True, "inversion": True}


def test_preparing_every_method_covers_each_methods_default_settings(tiny_model_dir, tmp_path):
    engine = _engine(tiny_model_dir, tmp_path)
    request = masked_request("dragdiffusion")
    request.params = {}
    cheap = {"lora_steps": 2, "inversion_strength": 0.7}
    # every method's defaults at a cost a unit test affords: the same settings for all
    engine.prepare(PrepareRequest(image=request.image, mask=request.mask, method="dragdiffusion", params=cheap))
    request.params = dict(FAST_PARAMS["dragdiffusion"], **cheap)
    assert engine.run(request).cache_hits == {"lora": True, "inversion": True}


def test_a_prepare_stops_at_a_step_when_cancelled_and_keeps_the_finished_parts(tiny_model_dir, tmp_path):
    engine = _engine(tiny_model_dir, tmp_path)
    request = masked_request("dragdiffusion")
    seen = []

    def stop_in_inversion() -> bool:
        return any(e.phase == "prepare" and e.step > request.params["lora_steps"] for e in seen)

    with pytest.raises(JobCancelled):
        engine.prepare(_prepare_for(request, "dragdiffusion"), seen.append, stop_in_inversion)
    result = engine.run(request)
    assert result.cache_hits == {"lora": True, "inversion": False}


def test_a_prepare_checks_its_image_and_mask(tiny_model_dir, tmp_path):
    engine = _engine(tiny_model_dir, tmp_path)
    request = masked_request("dragdiffusion")
    with pytest.raises(EditError) as err:
        engine.prepare(PrepareRequest(image=request.image, mask=np.zeros((3, 3), np.uint8)))
    assert err.value.code == "bad_mask"
    with pytest.raises(EditError) as err:
        engine.prepare(PrepareRequest(image=request.image, mask=np.zeros_like(request.mask)))
    assert err.value.code == "empty_mask"
    with pytest.raises(EditError) as err:
        engine.prepare(PrepareRequest(image=request.image, method="nope"))
    assert err.value.code == "unknown_method"
