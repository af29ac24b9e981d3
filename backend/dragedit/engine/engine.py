"""The engine: holds one model and the caches, and runs a drag request end to end.

Phases: load (the model, once), lora (RecLoRA, cached per image), inversion (cached per image and
strength), drag and denoise (the method). The full-size image is cropped to a working region and the
result pasted back (see images.py).
"""
from __future__ import annotations

import gc
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors import SafetensorError

from .. import __version__
from ..methods import METHODS, get_method
from .api import (CancelCheck, DragRequest, DragResult, EditError, EngineSettings, JobCancelled, PrepareRequest,
                  PrepareResult, Progress, ProgressCallback)
from .cache import DiskCache, MemoryCache, content_key
from .context import RECON_ADAPTER, DragContext
from .ddim import start_index, timesteps
from .features import UNetRunner
from .images import (Region, check_image_and_mask, check_inputs, crop_to_work, mask_to_latent, mask_to_work, paste,
                     plan_region)
from .inversion import ddim_invert
from .latents import Posterior, decode, encode
from .lora import (RECON_RECIPE, activate_adapter, load_lora_state, read_lora, save_lora,
                   train_reconstruction_lora)
from .models import DiffusionModel, load_model
from .work_budget import check_work, feature_channels
from .precision import cast_base_weights

log = logging.getLogger(__name__)


def elapsed(since: float, device: torch.device) -> float:
    """Seconds since ``since`` once the device has finished its queued work (a phase's true time)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - since


def phase_steps(phase: str, report: ProgressCallback, cancelled: CancelCheck) -> Callable[[int, int], None]:
    """A per-step callback for a phase: stop if the job was cancelled, else report step i of n."""
    def on_step(i: int, n: int) -> None:
        if cancelled():
            raise JobCancelled()
        report(Progress(phase, i, n))

    return on_step


def default_cache_dir() -> Path:
    home = os.environ.get("DRAGEDIT_HOME") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "dragedit")
    return Path(home) / "cache"


# the method parameters the RecLoRA and the inversion depend on (with the working region)
PREPARED_PARAMS = ("lora_steps", "lora_rank", "lora_lr", "lora_batch", "inversion_strength")


@dataclass
class ReadyImage:
    """What a drag of one working-region image starts from (Engine._ready_image)."""

    emb: torch.Tensor
    z0: Callable[[], torch.Tensor]  # the latent (posterior mean), encoded on first call
    recon: str | None  # the RecLoRA adapter's name, None without one
    trajectory: dict
    inversion_key: str
    timesteps: list[int]
    start: int
    cache_hits: dict[str, bool]
    timings: dict[str, float]


class Engine:
    """One model on one device, the caches, and the methods. Not thread-safe: one job at a time."""

    def __init__(self, settings: EngineSettings | None = None):
        self.settings = settings or EngineSettings()
        self.model: DiffusionModel | None = None
        cache_dir = Path(self.settings.cache_dir) if self.settings.cache_dir else default_cache_dir()
        self.lora_disk = DiskCache(cache_dir / "lora", self.settings.disk_cache_bytes, ".safetensors")
        self.lora_memory = MemoryCache(self.settings.memory_cache_items)
        self.inversion_memory = MemoryCache(self.settings.memory_cache_items)
        self.memo_memory = MemoryCache(4 * self.settings.memory_cache_items)
        self.reference_memory = MemoryCache(self.settings.reference_cache_items)
        self._recon_in_unet: str | None = None  # cache key of the RecLoRA now in the UNet (None: unknown)

    # ------------------------------------------------------------------ information

    def describe(self) -> dict[str, Any]:
        """Device, memory, model and the methods' parameter schemas (for ``welcome``)."""
        device = self.model.device if self.model else torch.device(
            "cuda" if self.settings.device in ("auto", "cuda") and torch.cuda.is_available() else
            ("cpu" if self.settings.device == "auto" else self.settings.device))
        info: dict[str, Any] = {
            "engine_version": __version__,
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
            "model": self.model.source if self.model else self.settings.model,
            "model_loaded": self.model is not None,
            "dtype": str(self.model.dtype).replace("torch.", "") if self.model else self.settings.dtype,
            "precision": self.model.precision.name if self.model else self.settings.dtype,
            "vae": self.model.vae_source if self.model else self.settings.vae,
            "work_size": self.settings.work_size or (self.model.native_size if self.model else None),
            "methods": [m.SPEC.as_dict() for m in METHODS.values()],
        }
        if device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            info["memory"] = {"free_bytes": free, "total_bytes": total}
        return info

    def status(self) -> dict[str, Any]:
        """Model and cache state (for ``status``)."""
        return {
            "model": self.model.source if self.model else None,
            "device": str(self.model.device) if self.model else None,
            "caches": {
                "lora_memory_items": len(self.lora_memory),
                "lora_disk_bytes": self.lora_disk.size_bytes(),
                "inversion_items": len(self.inversion_memory),
                "derived_items": len(self.memo_memory),
                "reference_items": len(self.reference_memory),
            },
        }

    def release_memory(self) -> None:
        """Drop the in-memory caches (e.g. after an out-of-memory); the model stays loaded."""
        for cache in (self.lora_memory, self.inversion_memory, self.memo_memory, self.reference_memory):
            cache.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ model

    def ensure_model(self, source: str | None = None, on_progress: ProgressCallback | None = None,
                     vae: str | None = None) -> DiffusionModel:
        """Load the requested model and VAE (or the configured ones) unless they are the ones in memory."""
        wanted, wanted_vae = source or self.settings.model, vae or self.settings.vae
        if self.model is not None and (self.model.source, self.model.vae_source) == (wanted, wanted_vae):
            return self.model
        if on_progress:
            on_progress(Progress("load", 0, 1))
        if self.model is not None:
            self.model = None
            self.release_memory()
        self._recon_in_unet = None
        self.model = load_model(wanted, self.settings.device, self.settings.dtype, config=self.settings.model_config,
                                vae=wanted_vae)
        if on_progress:
            on_progress(Progress("load", 1, 1))
        return self.model

    # ------------------------------------------------------------------ a job

    def run(self, request: DragRequest, on_progress: ProgressCallback | None = None,
            is_cancelled: CancelCheck | None = None) -> DragResult:
        """Run one drag request; raises EditError (a user-facing failure) or JobCancelled."""
        return self._guarded(self._run, request, on_progress, is_cancelled)

    def _guarded(self, work: Callable, request: Any, on_progress: ProgressCallback | None,
                 is_cancelled: CancelCheck | None) -> Any:
        """Run a job's work with default callbacks; a GPU out-of-memory frees the caches and becomes an EditError."""
        report = on_progress or (lambda progress: None)
        cancelled = is_cancelled or (lambda: False)
        try:
            return work(request, report, cancelled)
        except torch.cuda.OutOfMemoryError as exc:
            self.release_memory()
            raise EditError("out_of_memory", f"the GPU ran out of memory: {exc}".split("\n")[0],
                            "select a smaller region, lower the working size or the steps, or use --precision fp16") from exc

    def _run(self, request: DragRequest, report: ProgressCallback, cancelled: CancelCheck) -> DragResult:
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        method = get_method(request.method)
        params = method.SPEC.resolve(request.params)
        selection = check_inputs(request.image, request.mask, request.points)
        editable, pasted = selection > 0, selection > 127
        seed = request.seed if request.seed is not None else secrets.randbelow(2**31)

        model = self.ensure_model(request.model, report, request.vae)
        timings["load"] = time.perf_counter() - clock

        points = np.array([p for pair in request.points for p in pair], dtype=np.float64)
        work_size = self.settings.work_size or model.native_size
        region = plan_region(editable, points, work_size, model.size_multiple, params["feather"])
        work_rgb = crop_to_work(request.image, region)
        latent_size = (region.work_h // model.vae_scale_factor, region.work_w // model.vae_scale_factor)
        editable_latent = mask_to_latent(mask_to_work(editable, region), latent_size).to(model.device)
        feature_size = (region.work_h // 2, region.work_w // 2)
        work_points = region.to_work(points)
        feature_points = torch.tensor(np.round(work_points / 2.0), dtype=torch.float32, device=model.device)
        feature_points[:, 0].clamp_(0, feature_size[1] - 1)
        feature_points[:, 1].clamp_(0, feature_size[0] - 1)
        handles, targets = feature_points[0::2].contiguous(), feature_points[1::2].contiguous()
        if bool(((targets - handles).abs().sum(dim=-1) == 0).any()):
            raise EditError("drag_too_short", "a drag is shorter than one pixel at the model's working resolution",
                            "drag the target farther from its handle, or select a smaller region")

        check_work(method, params, len(handles), feature_channels(model.unet), model.device)
        runner = UNetRunner(model.unet, feature_size, autocast=model.precision.autocast)
        try:
            ready = self._ready_image(runner, model, work_rgb, request.prompt, params, report, cancelled)
            timings.update(ready.timings)
            emb, z0 = ready.emb, ready.z0()
            generator = torch.Generator(device="cpu").manual_seed(seed)

            def feature_to_image(pts: np.ndarray) -> np.ndarray:
                return region.to_image(pts * 2.0)

            ctx = DragContext(
                model=model, runner=runner, emb=emb, z0=z0, trajectory=ready.trajectory, timesteps=ready.timesteps,
                start=ready.start, handles=handles, targets=targets, editable=editable_latent,
                has_mask=not bool(editable_latent.all()),
                generator=generator, recon_adapter=ready.recon, memo_cache=self.memo_memory,
                memo_prefix=ready.inversion_key,
                report_progress=report, is_cancelled=cancelled, feature_to_image=feature_to_image,
                preview_every=request.preview_every, reference_cache=self.reference_memory,
            )
            clock = time.perf_counter()
            cast_base_weights(model.unet, model.precision.drag_weights)  # ctx.denoise casts back
            outcome = method.drag(ctx, params)
            drag_and_denoise = elapsed(clock, model.device)
            timings["drag"] = drag_and_denoise - ctx.denoise_seconds
            clock = time.perf_counter()
            edited_work = decode(model.vae, outcome.latent)
            reference_work = decode(model.vae, z0)  # the model's own rendering of the unedited input
            timings["denoise"] = ctx.denoise_seconds + elapsed(clock, model.device)
        finally:
            runner.close()
            cast_base_weights(model.unet, model.dtype)
        out = paste(request.image, pasted, region, edited_work, reference_work, params["feather"])
        timings["total"] = sum(timings.values())
        final_handles = [tuple(map(float, p)) for p in feature_to_image(outcome.handles.detach().cpu().numpy())]
        stats = {**runner.counter.as_dict(), **outcome.stats,
                 "region": [region.x0, region.y0, region.x1, region.y1], "work_size": [region.work_w, region.work_h]}
        return DragResult(out, final_handles, timings, seed, ready.cache_hits, stats)

    def prepare(self, request: PrepareRequest, on_progress: ProgressCallback | None = None,
                is_cancelled: CancelCheck | None = None) -> PrepareResult:
        """Make the RecLoRA and the inversion a drag of this image will look up, for one method's
        settings or every method's defaults (each distinct setting once); raises EditError or
        JobCancelled (checked every LoRA and inversion step). Progress: phase "prepare", the LoRA
        and inversion steps of every setting counted together (a cached part counts as done)."""
        return self._guarded(self._prepare, request, on_progress, is_cancelled)

    def _prepare(self, request: PrepareRequest, report: ProgressCallback, cancelled: CancelCheck) -> PrepareResult:
        check_image_and_mask(request.image, request.mask)
        editable = (request.mask > 0) if request.mask is not None else np.ones(request.image.shape[:2], bool)
        methods = [get_method(request.method)] if request.method else list(METHODS.values())
        clock = time.perf_counter()
        model = self.ensure_model(request.model, None, request.vae)
        timings = {"load": time.perf_counter() - clock}
        work_size = self.settings.work_size or model.native_size
        no_points = np.zeros((0, 2))
        settings: dict[tuple, tuple[Region, dict]] = {}  # what the RecLoRA and inversion depend on -> one method's
        for method in methods:
            params = method.SPEC.resolve(request.params if request.method else {})
            region = plan_region(editable, no_points, work_size, model.size_multiple, params["feather"])
            settings.setdefault((region, *(params[name] for name in PREPARED_PARAMS)), (region, params))
        all_steps = timesteps(model.scheduler)

        def phase_steps_of(params: dict) -> dict[str, int]:
            return {"lora": params["lora_steps"],
                    "inversion": len(all_steps) - start_index(params["inversion_strength"], len(all_steps))}

        total = sum(sum(phase_steps_of(params).values()) for _, params in settings.values())
        done = 0
        hits = {"lora": True, "inversion": True}
        for region, params in settings.values():
            steps = phase_steps_of(params)

            def count(progress: Progress, base: int = done, steps: dict[str, int] = steps) -> None:
                """A LoRA or inversion step as a step of the whole prepare (a cached phase counts whole)."""
                before = base + (steps["lora"] if progress.phase == "inversion" else 0)
                report(Progress("prepare", before + (steps[progress.phase] if progress.cached else progress.step), total))

            runner = UNetRunner(model.unet, (region.work_h // 2, region.work_w // 2),
                                autocast=model.precision.autocast)
            try:
                ready = self._ready_image(runner, model, crop_to_work(request.image, region), request.prompt, params,
                                          count, cancelled)
            finally:
                runner.close()
            done += sum(steps.values())
            for phase in ("lora", "inversion"):
                hits[phase] = hits[phase] and ready.cache_hits[phase]
                timings[phase] = timings.get(phase, 0.0) + ready.timings[phase]
        return PrepareResult(hits, timings)

    def _ready_image(self, runner: UNetRunner, model: DiffusionModel, work_rgb: np.ndarray, prompt: str, params: dict,
                     report: ProgressCallback, cancelled: CancelCheck) -> ReadyImage:
        """The prompt embedding, the RecLoRA (active in the UNet) and the inverted trajectory of a
        working-region image, each from the caches or made now; the latent is encoded only when needed."""
        emb = model.encode_prompt(prompt)
        latent: list[Posterior] = []

        def posterior() -> Posterior:
            if not latent:
                latent.append(encode(model.vae, work_rgb, model.device))
            return latent[0]

        image_key = content_key(work_rgb.tobytes(), work_rgb.shape, model.source, model.vae_source, model.precision.name)
        clock = time.perf_counter()
        recon, lora_key, lora_hit = self._reconstruction_lora(runner, model, posterior, emb, image_key, prompt, params,
                                                              report, cancelled)
        timings = {"lora": elapsed(clock, model.device)}

        clock = time.perf_counter()
        all_steps = timesteps(model.scheduler)
        start = start_index(params["inversion_strength"], len(all_steps))
        inversion_key = content_key(lora_key, prompt, all_steps[start])
        trajectory = self.inversion_memory.get(inversion_key)
        inversion_hit = trajectory is not None
        if trajectory is None:
            up = list(reversed(all_steps[start:]))
            trajectory = ddim_invert(runner, model.scheduler, posterior().mean, emb, up,
                                     phase_steps("inversion", report, cancelled))
            self.inversion_memory.put(inversion_key, trajectory)
        else:
            report(Progress("inversion", 1, 1, cached=True))
        timings["inversion"] = elapsed(clock, model.device)
        return ReadyImage(emb, lambda: posterior().mean, recon, trajectory, inversion_key, all_steps, start,
                          {"lora": lora_hit, "inversion": inversion_hit}, timings)

    def _reconstruction_lora(self, runner: UNetRunner, model: DiffusionModel, posterior: Callable[[], Posterior],
                             emb: torch.Tensor,
                             image_key: str, prompt: str, params: dict, report: ProgressCallback,
                             cancelled: CancelCheck) -> tuple[str | None, str, bool]:
        """Make the RecLoRA adapter active for this image: from memory, disk, or trained now.

        Returns (adapter name or None when lora_steps is 0, the cache key, whether it was a hit).
        Training is seeded from the image key, so a cached and a fresh adapter are the same.
        """
        steps, rank = params["lora_steps"], params["lora_rank"]
        key = content_key(image_key, prompt, steps, rank, params["lora_lr"], params["lora_batch"], RECON_RECIPE)
        if steps == 0:
            activate_adapter(model.unet, None)
            return None, key, False
        state = self.lora_memory.get(key)
        hit = state is not None
        if state is None:
            path = self.lora_disk.get(key)
            if path is not None:
                try:
                    state, hit = read_lora(path), True
                except (OSError, SafetensorError) as exc:  # another worker's cache pruning removed it meanwhile
                    log.warning("could not read the LoRA cache: %s", exc)
        if state is not None:
            if self._recon_in_unet != key:  # a repeated drag of the same image finds it in place
                self._recon_in_unet = None
                load_lora_state(model.unet, RECON_ADAPTER, state, rank)
            report(Progress("lora", 1, 1, cached=True))
        else:
            self._recon_in_unet = None
            generator = torch.Generator(device="cpu").manual_seed(int(key[:8], 16))
            state = train_reconstruction_lora(runner, model.scheduler, posterior(), emb, RECON_ADAPTER, rank, steps,
                                              params["lora_lr"], params["lora_batch"], generator,
                                              phase_steps("lora", report, cancelled))
            try:
                self.lora_disk.put(key, lambda path: save_lora(state, path))
            except (OSError, SafetensorError) as exc:  # a full disk must not fail the edit
                log.warning("could not write the LoRA cache: %s", exc)
        self.lora_memory.put(key, state)
        self._recon_in_unet = key
        activate_adapter(model.unet, RECON_ADAPTER)
        return RECON_ADAPTER, key, hit
