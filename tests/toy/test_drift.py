"""`python -m dragedit.toy.drift`: the latent variants really replace what the engine denoises."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dragedit.engine import DragRequest, Engine, EngineSettings
from dragedit.engine.context import DragContext
from dragedit.toy import drift
from dragedit.toy.cases import CASE_SIZE, all_cases

QUICK = {"lora_steps": 0, "drag_steps": 3, "r1": 1, "r2": 3}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    torch.set_num_threads(1)
    return Engine(EngineSettings(model="toy", device="cpu", work_size=CASE_SIZE,
                                 cache_dir=str(tmp_path_factory.mktemp("cache"))))


def _case(name: str):
    return {case.name: case for case in all_cases()}[name]


def test_as_dragged_is_the_engines_own_output_and_undragged_ignores_the_drag(engine):
    case = _case("move-short-0")
    engine_denoise = DragContext.denoise
    slow = drift.run_variants(engine, case, "dragdiffusion", {**QUICK, "lr": 0.001}, names=("as dragged", "undragged"))
    fast = drift.run_variants(engine, case, "dragdiffusion", {**QUICK, "lr": 0.2}, names=("as dragged", "undragged"))
    assert DragContext.denoise is engine_denoise  # the engine's own denoise is back after the variants
    assert not np.array_equal(slow["as dragged"], fast["as dragged"])  # the drag changes the output...
    np.testing.assert_array_equal(slow["undragged"], fast["undragged"])  # ...not once the drag is taken out
    plain_slow = engine.run(DragRequest(image=case.image(), points=case.points, method="dragdiffusion",
                                        params={**QUICK, "lr": 0.001}, seed=0)).image
    assert np.abs(slow["as dragged"].astype(int) - plain_slow.astype(int)).max() <= 2  # same edit as a plain run


def test_an_unknown_case_or_method_is_a_clear_error(tmp_path, capsys):
    assert drift.main(["no-such-case", "--out", str(tmp_path)]) == 2
    assert "unknown case 'no-such-case'" in capsys.readouterr().err
    assert drift.main(["move-short-0", "--method", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown method 'nope'. Known methods: dragdiffusion" in capsys.readouterr().err


def test_near_and_far_split_the_change_between_them(engine):
    case = _case("move-long-0")
    captured = {}

    def keep(z, z_orig, ctx):
        captured.update(z=z, z_orig=z_orig, ctx=ctx)
        return z

    with drift.denoise_instead(keep):
        engine.run(DragRequest(image=case.image(), points=case.points, method="dragdiffusion",
                               params={**QUICK, "lr": 0.2}, seed=0))
    z, z_orig, ctx = captured["z"], captured["z_orig"], captured["ctx"]
    near = drift.make_variant("near points")(z, z_orig, ctx)
    far = drift.make_variant("far from points")(z, z_orig, ctx)
    torch.testing.assert_close(near + far - z_orig, z)
    mask = drift.near_points(ctx, z.shape)
    (hx, hy), (tx, ty) = case.points[0]  # (53, 64) -> (89, 64): latent (13, 16) -> (22, 16), factor 4
    assert mask[int(hy / 4), int(hx / 4)] and mask[int(ty / 4), int(tx / 4)]
    assert not mask[0, 0] and not mask[31, 31]  # corners: more than NEAR_PX image pixels from both points
    random = drift.make_variant("random signs")(z, z_orig, ctx)
    torch.testing.assert_close((random - z_orig).abs(), (z - z_orig).abs())
