"""`python -m dragedit.toy.drift`: the latent variants really replace what the engine denoises, and the
ground-truth latent is inverted as the engine inverts the input."""
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
    assert drift.main(["move-short-0", "--variants", "as dragged,sideways", "--out", str(tmp_path)]) == 2
    assert "unknown variant 'sideways'. Variants: as dragged" in capsys.readouterr().err
    assert drift.main(["stretch-0", "--variants", "content moved", "--out", str(tmp_path)]) == 2
    assert "'content moved' needs a case that moves whole objects; 'stretch-0' stretches" in capsys.readouterr().err


def test_near_and_far_split_the_change_between_them(engine):
    case = _case("move-long-0")
    captured = {}

    def keep(z, z_orig, ctx, t):
        captured.update(z=z, z_orig=z_orig, ctx=ctx, t=t)
        return z

    with drift.denoise_instead(keep):
        engine.run(DragRequest(image=case.image(), points=case.points, method="dragdiffusion",
                               params={**QUICK, "lr": 0.2}, seed=0))
    z, z_orig, ctx = captured["z"], captured["z_orig"], captured["ctx"]
    near = drift.make_variant("near points")(z, z_orig, ctx, captured["t"])
    far = drift.make_variant("far from points")(z, z_orig, ctx, captured["t"])
    torch.testing.assert_close(near + far - z_orig, z)
    mask = drift.near_points(ctx, z.shape)
    (hx, hy), (tx, ty) = case.points[0]  # (53, 64) -> (89, 64): latent (13, 16) -> (22, 16), factor 4
    assert mask[int(hy / 4), int(hx / 4)] and mask[int(ty / 4), int(tx / 4)]
    assert not mask[0, 0] and not mask[31, 31]  # corners: more than NEAR_PX image pixels from both points
    random = drift.make_variant("random signs")(z, z_orig, ctx, captured["t"])
    torch.testing.assert_close((random - z_orig).abs(), (z - z_orig).abs())


def test_the_truth_latent_is_inverted_as_the_input_and_the_drag_splits_into_aimed_and_unaimed(engine):
    case = _case("move-long-0")
    captured = {}

    def keep(z, z_orig, ctx, t):
        captured.update(z=z, z_orig=z_orig, ctx=ctx, t=t,
                        input_again=drift.true_latent(ctx, case.image()[..., :3], t))  # the input, not the truth
        return z

    with drift.denoise_instead(keep):
        engine.run(DragRequest(image=case.image(), points=case.points, method="dragdiffusion",
                               params={**QUICK, "lr": 0.2}, seed=0))
    z, z_orig, ctx, t = captured["z"], captured["z_orig"], captured["ctx"], captured["t"]
    torch.testing.assert_close(captured["input_again"], z_orig, atol=1e-4, rtol=0)  # the engine's own inversion
    comparisons = []
    truth = drift.make_variant("ground truth", case=case, comparisons=comparisons)(z, z_orig, ctx, t)
    aimed = drift.make_variant("aimed part", case=case)(z, z_orig, ctx, t)
    unaimed = drift.make_variant("unaimed part", case=case)(z, z_orig, ctx, t)
    torch.testing.assert_close(aimed + unaimed - z_orig, z)
    dz, dz_true = z - z_orig, truth - z_orig
    assert dz_true.norm() > 1.0  # the object moved: the truth's latent is far from the input's
    cos = torch.nn.functional.cosine_similarity
    assert abs(float(cos((aimed - z_orig).flatten(), dz_true.flatten(), dim=0))) > 0.999  # along dz_true...
    assert abs(float(((unaimed - z_orig) * dz_true).sum())) < 1e-3 * float(dz.norm() * dz_true.norm())  # ...and across
    (comparison,) = comparisons
    assert comparison.true_norm == pytest.approx(float(dz_true.norm()), rel=1e-5)
    assert comparison.cosine_true == pytest.approx(float(cos(dz.flatten(), dz_true.flatten(), dim=0)), abs=1e-5)
    content = drift.content_moved(ctx, case, z_orig, t)
    assert comparison.content_norm == pytest.approx(float((content - z_orig).norm()), rel=1e-5)
    with pytest.raises(ValueError, match="needs the case and its ground truth"):
        drift.make_variant("ground truth")(z, z_orig, ctx, t)


def test_content_moved_translates_the_clean_latent_inside_the_objects_region_only(engine):
    case = _case("move-long-0")  # one object, (53, 64) -> (89, 64): 9 latent pixels right
    captured = {}
    with drift.denoise_instead(lambda z, z_orig, ctx, t: captured.update(z_orig=z_orig, ctx=ctx, t=t) or z):
        engine.run(DragRequest(image=case.image(), points=case.points, method="dragdiffusion", params=QUICK, seed=0))
    z_orig, ctx, t = captured["z_orig"], captured["ctx"], captured["t"]
    change = drift.content_moved(ctx, case, z_orig, t) - z_orig
    region = torch.nn.functional.interpolate(torch.from_numpy(case.edit_region()).float()[None, None],
                                             size=z_orig.shape[-2:], mode="area")[0, 0] > 0
    assert float(change[..., ~region].abs().max()) == 0.0  # the rest of the latent, its noise included, stays
    translated = ctx.alpha_bar(t).sqrt() * (ctx.z0[..., :, 10:23] - ctx.z0[..., :, 19:32])  # z0[x - 9] - z0[x]
    inside = region[:, 19:32]
    torch.testing.assert_close(change[..., :, 19:32][..., inside], translated[..., inside], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="needs a case that moves whole objects"):
        drift.content_moved(ctx, _case("stretch-0"), z_orig, t)


def test_content_change_by_a_step_translates_by_that_many_pixels_along_the_drag():
    case = _case("move-long-0")  # (53, 64) -> (89, 64): along +x
    z0 = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    change = drift.content_change(z0, case, step_px=4.0)  # 4 image px: one latent pixel
    region = torch.nn.functional.interpolate(torch.from_numpy(case.edit_region()).float()[None, None],
                                             size=(32, 32), mode="area")[0, 0] > 0
    assert float(change[..., ~region].abs().max()) == 0.0
    inside = region[:, 1:]
    torch.testing.assert_close(change[..., :, 1:][..., inside], (z0[..., :, :-1] - z0[..., :, 1:])[..., inside],
                               atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="needs a case that moves whole objects"):
        drift.content_change(z0, _case("stretch-0"))


def test_by_default_every_variant_that_applies_to_the_case_runs():
    assert drift.default_variants(_case("move-short-0")) == drift.VARIANTS + drift.TRUTH_VARIANTS
    assert drift.default_variants(_case("stretch-0")) == drift.VARIANTS + ("ground truth", "aimed part", "unaimed part")
