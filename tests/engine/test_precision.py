"""--precision: each mode runs on the CPU with the tiny model, bf16 / fp16 stay close to fp32, and the
authors' mode puts each phase in the type their code uses."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dragedit import cli
from dragedit.engine import DragRequest, EditError, Engine, EngineSettings
from dragedit.engine.ddim import start_index, timesteps
from dragedit.engine.features import UNetRunner
from dragedit.engine.inversion import ddim_invert
from dragedit.engine.latents import encode
from dragedit.engine.models import load_model
from dragedit.engine.precision import PRECISION_MODES, resolve_precision

MODES = ("fp32", "bf16", "fp16", "authors")


def _rgb() -> np.ndarray:
    small = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.kron(small, np.ones((8, 8, 1), dtype=np.uint8))


def _request(method: str, params: dict) -> DragRequest:
    image = np.dstack([_rgb(), np.full((64, 64), 255, np.uint8)])
    mask = np.zeros((64, 64), np.uint8)
    mask[12:52, 8:56] = 255
    return DragRequest(image, [((20.0, 30.0), (40.0, 30.0))], method, {"lora_steps": 2, "inversion_strength": 0.3,
                                                                       **params}, mask=mask, seed=3)


def test_modes_resolve_to_their_types_and_an_unknown_one_is_a_clear_error():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu).name == "fp32"
    authors = resolve_precision("authors", cpu)
    assert (authors.weights, authors.drag_weights, authors.autocast) == (torch.float16, torch.float32, torch.float16)
    assert authors.scales_gradients
    for mode, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16), ("fp32", torch.float32)):
        resolved = resolve_precision(mode, cpu)
        assert (resolved.weights, resolved.drag_weights, resolved.autocast) == (dtype, dtype, None)
        assert not resolved.scales_gradients
    with pytest.raises(EditError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", cpu)
    assert cli.PRECISION_MODES == PRECISION_MODES  # the CLI's copy (kept free of torch for --help)


@pytest.fixture(scope="module")
def passes(tiny_model_dir):
    """Per mode: the image latent, the inverted latent, and epsilon and features at it (with and without a graph)."""
    torch.set_num_threads(1)
    out = {}
    for mode in MODES:
        model = load_model(str(tiny_model_dir), "cpu", mode)
        runner = UNetRunner(model.unet, (32, 32), autocast=model.precision.autocast)
        try:
            emb = model.encode_prompt("")
            z0 = encode(model.vae, _rgb(), model.device).mean
            steps = timesteps(model.scheduler)
            start = start_index(0.3, len(steps))
            z_t = ddim_invert(runner, model.scheduler, z0, emb, list(reversed(steps[start:])), None)[steps[start]]
            with torch.no_grad():
                eps, features = runner.eps_and_features(z_t, steps[start], emb)
            graph_eps, graph_features = runner.eps_and_features(z_t.clone().requires_grad_(True), steps[start], emb)
        finally:
            runner.close()
        out[mode] = {"z0": z0, "z_t": z_t, "eps": eps, "features": features,
                     "graph_eps": graph_eps.detach(), "graph_features": graph_features.detach()}
    return out


@pytest.mark.parametrize("mode, tolerance", [("bf16", 0.06), ("fp16", 0.01), ("authors", 0.01)])
def test_reduced_precision_stays_close_to_fp32(passes, mode, tolerance):
    """Relative L2 error against fp32 (measured: bf16 1-3%, fp16 0.1-0.4% on the tiny model)."""
    for name, value in passes[mode].items():
        reference = passes["fp32"][name]
        assert value.dtype == torch.float32 and torch.isfinite(value).all()
        error = ((value - reference).norm() / reference.norm()).item()
        assert error < tolerance, f"{name}: {error:.4f}"
        assert error > 0 or mode == "fp32"  # really computed in the lower precision


FEW_STEPS = {"dragdiffusion": {"drag_steps": 2}, "draglora": {"drag_steps": 2},
             "gooddrag": {"operations": 2, "operations_per_step": 1, "gradient_steps": 1}}


@pytest.mark.parametrize("mode, method", [(mode, "draglora") for mode in MODES] + [
    ("authors", "gooddrag"), ("bf16", "gooddrag"), ("fp16", "dragdiffusion")])  # authors + dragdiffusion: below
def test_every_mode_runs_every_phase(tiny_model_dir, tmp_path, mode, method):
    params = FEW_STEPS[method]
    engine = Engine(EngineSettings(model=str(tiny_model_dir), device="cpu", dtype=mode, work_size=64,
                                   cache_dir=str(tmp_path / "cache")))
    result = engine.run(_request(method, params))
    assert result.image.shape == (64, 64, 4) and np.isfinite(result.handles).all()
    assert result.stats["unet_backward"] > 2  # the RecLoRA and the drag both optimised
    precision = engine.model.precision
    base = [p for n, p in engine.model.unet.named_parameters() if "lora_" not in n]
    lora = [p for n, p in engine.model.unet.named_parameters() if "lora_" in n]
    assert {p.dtype for p in base} == {precision.weights}  # back at rest after the drag
    assert lora and {p.dtype for p in lora} == {torch.float32}
    assert engine.describe()["precision"] == mode


@pytest.mark.parametrize("method", ["dragdiffusion", "draglora"])
def test_authors_mode_runs_each_phase_in_the_authors_types(tiny_model_dir, tmp_path, method):
    """RecLoRA: fp16 weights under fp16 autocast; inversion and denoising: fp16; the drag: fp32 weights,
    fp16 autocast where gradients flow, fp32 for F0 and the mask reference; a gradient scaler for both."""
    engine = Engine(EngineSettings(model=str(tiny_model_dir), device="cpu", dtype="authors", work_size=64,
                                   cache_dir=str(tmp_path / "cache")))
    engine.ensure_model()
    unet = engine.model.unet
    seen = []
    hook = unet.up_blocks[2].register_forward_hook(
        lambda module, args, output: seen.append((torch.is_grad_enabled(), unet.conv_in.weight.dtype, output.dtype)))
    scalers = []
    real = UNetRunner.grad_scaler

    def spy(self):
        scalers.append(real(self))
        return scalers[-1]

    UNetRunner.grad_scaler = spy
    try:
        engine.run(_request(method, FEW_STEPS[method]))
    finally:
        UNetRunner.grad_scaler = real
        hook.remove()
    half, full = torch.float16, torch.float32
    lora_steps = 2
    assert seen[:lora_steps] == [(True, half, half)] * lora_steps  # RecLoRA: fp16 mixed precision
    kinds = set(seen)
    assert (False, half, half) in kinds  # inversion and denoising: the fp16 weights
    assert (False, full, full) in kinds  # F0 and the mask reference: fp32
    assert (True, full, half) in kinds  # the drag's supervised passes: fp32 weights, fp16 autocast
    assert kinds <= {(True, half, half), (False, half, half), (False, full, full), (True, full, half)}
    first_drag_pass = next(kind for kind in seen if kind[1] == full)
    assert first_drag_pass == (False, full, full)  # F0 (and the mask reference) before any autocast pass
    assert len(scalers) == 2 and all(s.is_enabled() for s in scalers)
