"""DragLoRA: adaptive switching between DOO and ILFA-only iterations, and the method end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from peft.tuners.tuners_utils import BaseTunerLayer

from dragedit.engine import Engine
from dragedit.engine import lora as lora_module
from dragedit.engine.api import DragRequest, EditError, EngineSettings, JobCancelled
from dragedit.engine.lora import lora_parameters
from dragedit.methods import draglora
from dragedit.methods.draglora import SPEC, Switching

FAST = {"lora_steps": 2, "lora_batch": 1, "inversion_strength": 0.3, "feather": 2}


# ---------------------------------------------------------------- switching, from synthetic tracker outcomes

def _switching(**overrides) -> Switching:
    return Switching(SPEC.resolve({"k_ini": 2, **overrides}))


def _pts(*xy):
    return torch.tensor([list(p) for p in xy], dtype=torch.float32)


def _after_doo_steps(s: Switching, n: int) -> Switching:
    for _ in range(n):
        s.doo_step_done()
    return s


def test_enters_ilfa_only_only_when_the_step_count_is_strictly_above_k_ini():
    prev, aim = _pts((5, 5)), _pts((6, 5))
    s = _after_doo_steps(_switching(), 2)
    s.update(prev, _pts((6, 5)), torch.tensor([0.5]), aim)
    assert not s.ilfa_only  # step count 2 is not > k_ini 2 (the engine used to enter at >=)
    s.doo_step_done()
    s.update(prev, _pts((6, 5)), torch.tensor([0.5]), aim)
    assert s.ilfa_only and s.entries == 1


def test_several_points_confidence_is_the_smallest_minD_and_landing_the_joint_norm():
    prev = _pts((5, 5), (9, 9))
    s = _after_doo_steps(_switching(), 3)
    s.update(prev, _pts((6, 5), (10, 9)), torch.tensor([0.2, 1.25]), _pts((6, 5), (10, 9)))
    assert s.ilfa_only  # one confident point is enough (the engine required every point)
    s = _after_doo_steps(_switching(), 3)
    # each point 1.0 from its aim (< l2 = 1.4 each), jointly sqrt(2) = 1.414 > 1.4: not landed
    s.update(prev, _pts((6, 5), (10, 9)), torch.tensor([0.2, 0.2]), _pts((7, 5), (10, 10)))
    assert not s.ilfa_only


def test_ilfa_only_ends_when_the_smallest_minD_exceeds_d2_and_keeps_no_point_back():
    s = _after_doo_steps(_switching(), 3)
    s.update(_pts((5, 5), (9, 9)), _pts((6, 5), (10, 9)), torch.tensor([0.5, 0.5]), _pts((6, 5), (10, 9)))
    assert s.ilfa_only
    handles = s.update(_pts((6, 5), (10, 9)), _pts((7, 5), (11, 9)), torch.tensor([0.5, 2.0]), _pts((6, 5), (10, 9)))
    assert s.ilfa_only and handles.tolist() == [[7, 5], [11, 9]]  # one point lost: stays, nothing kept back
    handles = s.update(_pts((7, 5), (11, 9)), _pts((8, 5), (12, 9)), torch.tensor([1.4, 2.0]), _pts((6, 5), (10, 9)))
    assert not s.ilfa_only and handles.tolist() == [[8, 5], [12, 9]]  # every point lost: back to DOO, tracked kept


def test_ilfa_only_ends_after_more_than_five_unmoved_iterations_and_is_capped():
    s = _after_doo_steps(_switching(), 3)
    s.update(_pts((5, 5)), _pts((6, 5)), torch.tensor([0.5]), _pts((6, 5)))
    for i in range(draglora.STALL_LIMIT):
        s.update(_pts((6, 5)), _pts((6, 5)), torch.tensor([0.5]), _pts((6, 5)))
        if i == 1:  # a move in between does not reset the count (the authors count over the stay)
            s.update(_pts((6, 5)), _pts((7, 5)), torch.tensor([0.5]), _pts((6, 5)))
        assert s.ilfa_only
    s.update(_pts((7, 5)), _pts((7, 5)), torch.tensor([0.5]), _pts((6, 5)))
    assert not s.ilfa_only
    capped = _after_doo_steps(_switching(max_ilfa_steps=4), 3)
    capped.ilfa_steps = 4
    capped.update(_pts((5, 5)), _pts((6, 5)), torch.tensor([0.5]), _pts((6, 5)))
    assert not capped.ilfa_only
    assert SPEC.resolve({})["max_ilfa_steps"] >= 1000  # a safety cap only, far above what a drag needs


def test_keep_back_at_most_three_times_in_dOO_mode_each_delaying_ilfa_only():
    s = _after_doo_steps(_switching(), 3)
    prev, tracked = _pts((5, 5), (9, 9)), _pts((6, 5), (10, 10))
    lost = torch.tensor([1.1, 2.0])  # not confident (smallest 1.1 >= d1), one point lost
    for kept in range(1, draglora.MAX_KEPT + 1):
        assert s.update(prev, tracked, lost, tracked).tolist() == [[6, 5], [9, 9]]
        assert s.step_count == 3 - kept and s.keep_backs == kept
    assert s.update(prev, tracked, lost, tracked).tolist() == tracked.tolist()  # the 4th: tracked accepted
    assert s.step_count == 0


def test_no_keep_back_where_the_entry_test_applies():
    s = _after_doo_steps(_switching(), 3)
    # confident (0.5 < d1) after k_ini but not landed: the authors' code skips the keep-back test
    handles = s.update(_pts((5, 5), (9, 9)), _pts((6, 5), (10, 10)), torch.tensor([0.5, 2.0]), _pts((9, 5), (10, 10)))
    assert not s.ilfa_only and handles.tolist() == [[6, 5], [10, 10]] and s.keep_backs == 0


def test_minD_is_rounded_to_two_decimals():
    s = _after_doo_steps(_switching(), 3)
    s.update(_pts((5, 5)), _pts((6, 5)), torch.tensor([0.996]), _pts((6, 5)))
    assert not s.ilfa_only  # rounds to 1.00, not below d1
    s = _after_doo_steps(_switching(), 1)
    handles = s.update(_pts((5, 5)), _pts((6, 5)), torch.tensor([1.304]), _pts((6, 5)))
    assert handles.tolist() == [[6, 5]] and s.keep_backs == 0  # rounds to 1.30, not above d2


def test_schema_publishes_the_defaults_and_rejects_an_unknown_region():
    defaults = SPEC.resolve({})
    assert (defaults["drag_steps"], defaults["lr"], defaults["dds_weight"], defaults["tracking_region"]) == (80, 1e-4, 50.0, "distance")
    assert (defaults["d1"], defaults["d2"], defaults["l2"], defaults["k_ini"], defaults["inversion_strength"]) == (1.0, 1.3, 1.4, 10, 0.7)
    with pytest.raises(EditError, match="tracking_region"):
        SPEC.resolve({"tracking_region": "square"})


# ---------------------------------------------------------------- end to end through Engine.run

@pytest.fixture(scope="module")
def engine(tiny_model_dir, tmp_path_factory):
    torch.set_num_threads(1)
    return Engine(EngineSettings(model=str(tiny_model_dir), device="cpu", cache_dir=str(tmp_path_factory.mktemp("cache")),
                                 work_size=64))


def _image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    rgb = np.kron(small, np.ones((8, 8, 1), dtype=np.uint8))  # blocky, so the edit is visible
    return np.dstack([rgb, np.full((64, 64), 255, np.uint8)])


def _mask() -> np.ndarray:
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 12:52] = 255
    return mask


def test_runs_ilfa_only_iterations_without_backward_and_returns_to_doo(engine, monkeypatch):
    """A scripted tracker: lost once in DOO mode (kept back), then confident and on target, then lost
    in ILFA-only mode, then never confident enough again."""
    calls = []

    def tracker(features, templates, handles, targets, radius, region="square", angle_deg=30.0):
        calls.append((handles.clone(), region))
        n = len(calls)
        min_d = 2.0 if n in (1, 7) else (0.5 if n <= 6 else 1.2)
        return handles + torch.tensor([1.0, 0.0]), torch.full((handles.shape[0],), min_d)

    monkeypatch.setattr(draglora, "track_points", tracker)
    progress = []
    request = DragRequest(_image(1), [((10.0, 32.0), (56.0, 32.0))], "draglora",
                          {**FAST, "drag_steps": 7, "k_ini": 2}, mask=_mask(), seed=3)
    result = engine.run(request, progress.append)
    drag_steps = [p.step for p in progress if p.phase == "drag"]
    # DOO, kept back + DOO (step count back to 1), DOO, DOO, enter at step count 3 > 2 (no DOO),
    # ILFA-only x2, every point lost -> DOO (re-run with gradients), then DOO to K = 7
    assert drag_steps == [1, 2, 3, 4, 4, 4, 4, 5, 6, 7]
    assert result.stats["ilfa_only_steps"] == 3 and result.stats["ilfa_only_entries"] == 1
    assert result.stats["keep_backs"] == 1 and result.stats["doo_steps"] == 7
    assert result.stats["unet_backward"] == FAST["lora_steps"] + 7
    assert torch.equal(calls[1][0], calls[0][0])  # kept back in DOO mode
    assert torch.equal(calls[7][0], calls[6][0] + torch.tensor([1.0, 0.0]))  # leaving ILFA-only keeps the tracked one
    assert {region for _, region in calls} == {"distance"}


def test_fast_variant_tracks_in_the_angle_closer_region(engine, monkeypatch):
    regions = []
    real = draglora.track_points

    def spy(features, templates, handles, targets, radius, region="square", angle_deg=30.0):
        regions.append((region, angle_deg))
        return real(features, templates, handles, targets, radius, region, angle_deg)

    monkeypatch.setattr(draglora, "track_points", spy)
    request = DragRequest(_image(2), [((10.0, 32.0), (56.0, 32.0))], "draglora",
                          {**FAST, "drag_steps": 3, "tracking_region": "angle"}, mask=_mask(), seed=3)
    engine.run(request)
    assert regions and set(regions) == {("angle", 30.0)}


def _assert_drag_adapter_at_rest(engine) -> None:
    """After a drag the drag adapter stays in the UNet for the next one, frozen and inactive."""
    unet = engine.model.unet
    assert "drag" in unet.peft_config
    assert not any(p.requires_grad for p in lora_parameters(unet, "drag"))
    layers = [m for m in unet.modules() if isinstance(m, BaseTunerLayer)]
    assert layers and all(layer.active_adapters == ["recon"] for layer in layers)


def test_end_to_end_with_a_mask(engine, monkeypatch):
    image, mask = _image(3), _mask()
    progress = []
    request = DragRequest(image, [((20.0, 30.0), (40.0, 30.0))], "draglora", {**FAST, "drag_steps": 4},
                          mask=mask, seed=5, preview_every=1)
    first = engine.run(request, progress.append)
    assert first.image.shape == image.shape and first.image.dtype == np.uint8
    feather = FAST["feather"]
    outside = np.ones((64, 64), bool)
    outside[16 - feather:48 + feather, 12 - feather:52 + feather] = False
    assert np.array_equal(first.image[outside], image[outside])
    assert np.abs(first.image[16:48, 12:52, :3].astype(int) - image[16:48, 12:52, :3]).mean() > 1.0
    assert first.cache_hits == {"lora": False, "inversion": False}
    drag = [p for p in progress if p.phase == "drag"]
    assert drag and all(p.total == 4 for p in drag) and drag[-1].step == 4
    assert all(p.preview is not None and p.preview.ndim == 3 and p.handles for p in drag)
    assert [p.step for p in progress if p.phase == "denoise"][-1] == 15
    _assert_drag_adapter_at_rest(engine)

    injected = []
    real_add_lora = lora_module.add_lora
    monkeypatch.setattr(lora_module, "add_lora", lambda *a, **k: injected.append(a[1]) or real_add_lora(*a, **k))
    second = engine.run(request)
    assert injected == []  # the kept drag adapter is overwritten in place, not injected again
    assert second.cache_hits == {"lora": True, "inversion": True}
    assert np.array_equal(first.image, second.image)  # same seed, same output
    assert second.handles == first.handles


def test_without_reconstruction_lora_is_deterministic(engine):
    request = DragRequest(_image(4), [((20.0, 30.0), (40.0, 30.0))], "draglora",
                          {**FAST, "lora_steps": 0, "drag_steps": 3}, mask=_mask(), seed=9)
    first = engine.run(request)
    torch.manual_seed(1234)  # the fresh drag adapter must not depend on the global generator
    second = engine.run(request)
    assert np.array_equal(first.image, second.image)


def test_cancels_between_iterations(engine):
    seen = []
    request = DragRequest(_image(5), [((20.0, 30.0), (40.0, 30.0))], "draglora", {**FAST, "drag_steps": 20},
                          mask=_mask(), seed=1)
    with pytest.raises(JobCancelled):
        engine.run(request, seen.append, is_cancelled=lambda: any(p.phase == "drag" and p.step >= 2 for p in seen))
    assert max(p.step for p in seen if p.phase == "drag") == 2
    _assert_drag_adapter_at_rest(engine)
