"""What a method works with: the prepared latents, points, mask, UNet runner, caches and reporting."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .api import JobCancelled, Progress
from .cache import MemoryCache
from .ddim import alpha_bar
from .denoise import denoise_mutual
from .features import UNetRunner
from .latents import preview
from .lora import activate_adapter
from .models import DiffusionModel
from .precision import cast_base_weights

RECON_ADAPTER = "recon"


@dataclass
class DragOutcome:
    """A method's answer: the clean edited latent and the final handles (feature pixels)."""

    latent: torch.Tensor
    handles: torch.Tensor
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class DragContext:
    """Everything prepared for a drag at working resolution.

    Points live at feature ("supervision") resolution: half the working image, (x, y) order.
    ``trajectory`` holds the inverted latents {t: z_t} for t up to the drag timestep (shared with the
    cache: never modify its tensors in place). ``editable`` is the binary mask at latent resolution
    (1 = may change; the user's selection or the default region around the points); ``has_mask`` is
    False when it covers the whole latent (nothing to keep: no mask loss).
    """

    model: DiffusionModel
    runner: UNetRunner
    emb: torch.Tensor
    z0: torch.Tensor
    trajectory: dict[int, torch.Tensor]
    timesteps: list[int]
    start: int
    handles: torch.Tensor
    targets: torch.Tensor
    editable: torch.Tensor
    has_mask: bool
    generator: torch.Generator
    recon_adapter: str | None
    memo_cache: MemoryCache
    memo_prefix: str
    report_progress: Callable[[Progress], None]
    is_cancelled: Callable[[], bool]
    feature_to_image: Callable[[np.ndarray], np.ndarray]
    preview_every: int = 0
    reference_cache: MemoryCache | None = None  # the original row's mutual-attention keys/values per image
    denoise_seconds: float = 0.0  # time spent in denoise(), so the engine can report drag and denoise apart
    trainable_adapters: set[str] = field(default_factory=set)
    _phase_start: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ timesteps

    @property
    def t(self) -> int:
        """The drag timestep (e.g. 681 for strength 0.7)."""
        return self.timesteps[self.start]

    @property
    def z_t(self) -> torch.Tensor:
        return self.trajectory[self.t]

    @property
    def step_size(self) -> int:
        return self.model.scheduler.config.num_train_timesteps // len(self.timesteps)

    def alpha_bar(self, t: int) -> torch.Tensor:
        return alpha_bar(self.model.scheduler, t).to(self.z0.device)

    # ------------------------------------------------------------------ adapters, caches

    def use_adapter(self, name: str | None) -> None:
        """Make ``name`` the UNet's active LoRA adapter (None: the base model); its weights take
        gradients only if it is in ``trainable_adapters``."""
        activate_adapter(self.model.unet, name, trainable=name in self.trainable_adapters)

    def memo(self, name: str, compute: Callable[[], Any]) -> Any:
        """A value derived from this image's inversion, cached across drags of the same image."""
        key = f"{self.memo_prefix}:{name}"
        value = self.memo_cache.get(key)
        if value is None:
            value = compute()
            self.memo_cache.put(key, value)
        return value

    # ------------------------------------------------------------------ reporting

    def check_cancel(self) -> None:
        if self.is_cancelled():
            raise JobCancelled()

    def report(self, phase: str, step: int, total: int, handles: torch.Tensor | None = None,
               latent: torch.Tensor | None = None) -> None:
        """Report progress (with ETA); a preview of ``latent`` every ``preview_every`` steps."""
        now = time.perf_counter()
        started = self._phase_start.setdefault(phase, now)
        eta = (now - started) / step * (total - step) if step > 0 else None
        image_handles = None
        if handles is not None:
            image_handles = [tuple(map(float, p)) for p in self.feature_to_image(handles.detach().cpu().numpy())]
        small = None
        if latent is not None and self.preview_every > 0 and (step % self.preview_every == 0 or step == total):
            small = preview(latent)
        self.report_progress(Progress(phase, step, total, eta, preview=small, handles=image_handles))

    # ------------------------------------------------------------------ shared final phase

    def denoise(self, z_edited: torch.Tensor, from_index: int | None = None, z_original: torch.Tensor | None = None,
                edit_adapter: str | None = None, reference_name: str | None = None) -> torch.Tensor:
        """Denoise [original, edited] from timesteps[from_index] with mutual self-attention.

        With ``edit_adapter`` the edited row runs with that adapter and the original row with the
        RecLoRA (two passes per step, keys/values recorded then replayed); otherwise one batch.
        The original row's keys/values are cached per image: the inverted trajectory's row (no
        ``z_original``) under "trajectory", another under ``reference_name`` (what makes it, so equal
        names mean equal rows; None: not cached). A repeated drag then denoises the edited row alone.
        """
        if self.z0.is_cuda:  # the drag's queued GPU work belongs to the drag phase
            torch.cuda.synchronize(self.z0.device)
        clock = time.perf_counter()
        cast_base_weights(self.model.unet, self.model.dtype)  # the drag's weight type may differ (precision.py)
        index = self.start if from_index is None else from_index
        steps = self.timesteps[index:]
        original = self.trajectory[self.timesteps[index]] if z_original is None else z_original
        name = "trajectory" if z_original is None else reference_name
        key = f"{self.memo_prefix}:reference:{name}:{index}"
        cacheable = self.reference_cache is not None and name is not None
        reference = self.reference_cache.get(key) if cacheable else None
        record = [] if cacheable and reference is None else None
        switch = None
        if edit_adapter is not None:
            def switch(reference_row: bool) -> None:
                self.use_adapter(self.recon_adapter if reference_row else edit_adapter)
        else:
            self.use_adapter(self.recon_adapter)

        def on_step(i: int, n: int, latent: torch.Tensor) -> None:
            self.check_cancel()
            self.report("denoise", i, n, latent=latent)

        latent = denoise_mutual(self.runner, self.model.scheduler, original, z_edited, self.emb, steps, on_step, switch,
                                reference=reference, record=record)
        if record is not None:  # complete: a cancelled denoise raised before this
            self.reference_cache.put(key, record)
        self.denoise_seconds += time.perf_counter() - clock
        return latent
