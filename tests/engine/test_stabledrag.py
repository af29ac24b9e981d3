"""StableDrag end to end through Engine.run on a tiny model, and its confidence switch inside the drag loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dragedit.engine import DragRequest, Engine, EngineSettings, JobCancelled
from dragedit.engine.images import blend_weights
from dragedit.methods import METHODS, stabledrag
from tests.method_params import same_edit

# Small step counts so a run takes seconds on a CPU; everything else is the published default.
FAST = {"lora_steps": 2, "drag_steps": 4, "tracker_iterations": 100, "inversion_strength": 0.2}


def _engine(model_dir, cache_dir) -> Engine:
    return Engine(EngineSettings(model=str(model_dir), device="cpu", work_size=64, cache_dir=str(cache_dir)))


@pytest.fixture(scope="module")
def shared_engine(tiny_model_dir, tmp_path_factory) -> Engine:
    """One engine for the tests that only need a warm cache."""
    return _engine(tiny_model_dir, tmp_path_factory.mktemp("stabledrag-cache"))


def _request(seed: int = 3, **extra) -> DragRequest:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (80, 104, 4), dtype=np.uint8)
    image[..., 3] = 255
    mask = np.zeros((80, 104), np.uint8)
    mask[16:64, 24:80] = 255
    points = [((36.0, 30.0), (56.0, 36.0)), ((66.0, 52.0), (50.0, 44.0))]
    return DragRequest(image=image, mask=mask, points=points, method="stabledrag", params=dict(FAST, **extra),
                       seed=seed, preview_every=2)


def test_spec_publishes_the_papers_defaults():
    defaults = stabledrag.SPEC.resolve({})
    assert METHODS["stabledrag"] is stabledrag and stabledrag.SPEC.title == "StableDrag"
    expected = {"lr": 0.01, "r1": 1, "r2": 3, "mask_weight": 0.1, "drag_steps": 80, "lora_steps": 80,
                "inversion_strength": 0.7, "tracker_iterations": 1000, "template_weight": 0.3, "confidence_tau": 0.4}
    assert {k: defaults[k] for k in expected} == expected


def test_stabledrag_end_to_end_with_mask(tiny_model_dir, tmp_path):
    engine = _engine(tiny_model_dir, tmp_path / "cache")
    request = _request()
    events = []
    first = engine.run(request, events.append)
    assert first.image.shape == request.image.shape and first.image.dtype == np.uint8
    untouched = blend_weights(request.mask > 127, stabledrag.SPEC.resolve({})["feather"]) == 0
    assert np.array_equal(first.image[untouched], request.image[untouched])
    inside = request.mask > 127
    assert (first.image[inside] != request.image[inside]).mean() > 0.5
    assert first.cache_hits == {"lora": False, "inversion": False}
    drag_events = [e for e in events if e.phase == "drag"]
    assert [e.step for e in drag_events if e.step > 0] == list(range(1, first.stats["drag_steps_run"] + 1))
    assert all(e.total == FAST["drag_steps"] and len(e.handles) == 2 for e in drag_events)
    assert any(e.preview is not None for e in drag_events)
    assert {"lora", "inversion", "drag", "denoise"} <= {e.phase for e in events}
    assert first.stats["unet_backward"] == FAST["lora_steps"] + first.stats["drag_steps_run"]
    assert len(first.stats["template_supervised_steps"]) == 2 and len(first.handles) == 2

    events.clear()
    second = engine.run(request, events.append)
    assert second.cache_hits == {"lora": True, "inversion": True}
    assert any(e.cached for e in events if e.phase == "lora") and any(e.cached for e in events if e.phase == "inversion")
    assert second.stats["unet_backward"] == second.stats["drag_steps_run"]  # no LoRA training this time
    assert same_edit(second.image, first.image)  # deterministic for a seed, cached or not
    assert second.handles == first.handles


def test_confidence_drop_switches_the_point_to_template_supervision(shared_engine, monkeypatch):
    """Point 0's confidence is made to fall to a tenth after the first tracking: from then on its loss
    uses the original template (self_referenced False) while point 1 keeps the self-referenced loss."""
    real_track, real_loss = stabledrag.track_points_discriminative, stabledrag.motion_loss
    trackings, flags = [], []

    def track_with_drop(*args, **kwargs):
        handles, confidence = real_track(*args, **kwargs)
        trackings.append(confidence.clone())
        if len(trackings) > 1:
            confidence = confidence * torch.tensor([0.1, 1.0])
        return handles, confidence

    def recording_loss(*args, **kwargs):
        flags.append(kwargs["self_referenced"].tolist())
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(stabledrag, "track_points_discriminative", track_with_drop)
    monkeypatch.setattr(stabledrag, "motion_loss", recording_loss)
    steps = 5
    result = shared_engine.run(_request(drag_steps=steps))
    assert result.stats["drag_steps_run"] == steps and len(flags) == steps
    assert flags[:2] == [[True, True], [True, True]]  # step 0 (no tracking yet) and step 1 (s_1 itself)
    assert flags[2:] == [[False, True]] * (steps - 2)
    assert result.stats["template_supervised_steps"] == [steps - 2, 0]


def test_without_a_drop_every_point_stays_self_referenced(shared_engine):
    result = shared_engine.run(_request(drag_steps=3, confidence_tau=0.0))
    assert result.stats["template_supervised_steps"] == [0, 0]


def test_cancel_between_drag_iterations(shared_engine):
    seen = []

    def cancelled() -> bool:
        return any(e.phase == "drag" and e.step >= 1 for e in seen)

    with pytest.raises(JobCancelled):
        shared_engine.run(_request(), seen.append, cancelled)
    assert max(e.step for e in seen if e.phase == "drag") == 1
    assert not any(e.phase == "denoise" for e in seen)
