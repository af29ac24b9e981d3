"""UNet passes that also return the drag features F(z, t) (output of up_blocks[2]).

A feature-only pass stops the UNet right after up_blocks[2]: the blocks after it (and the output
convolution) are skipped when epsilon is not needed.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

FEATURE_BLOCK = 2


class _FeaturesReady(Exception):
    """Raised from the hook to end a feature-only pass early."""


@dataclass
class PassCounter:
    """How many UNet passes of each kind a job ran."""

    full: int = 0
    feature_only: int = 0
    backward: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"unet_forward": self.full, "unet_feature_forward": self.feature_only, "unet_backward": self.backward}


@dataclass
class UNetRunner:
    """Runs one UNet in its own dtype on fp32 inputs; captures up_blocks[2]; counts passes.

    With ``autocast`` set, passes that build a graph (RecLoRA training, the drag's supervised passes)
    run under autocast to that type and ``step`` scales the loss (precision.py: the authors' mode);
    passes without gradients run in the weights' type.
    """

    unet: torch.nn.Module
    feature_size: tuple[int, int]  # (H/2, W/2) of the working image
    counter: PassCounter = field(default_factory=PassCounter)
    autocast: torch.dtype | None = None

    def __post_init__(self) -> None:
        self._captured: torch.Tensor | None = None
        self._stop_early = False
        self._hook = self.unet.up_blocks[FEATURE_BLOCK].register_forward_hook(self._capture)

    def close(self) -> None:
        self._hook.remove()

    def _capture(self, module, inputs, output) -> None:
        self._captured = output
        if self._stop_early:
            raise _FeaturesReady

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def device_type(self) -> str:
        return next(self.unet.parameters()).device.type

    def _forward(self, z: torch.Tensor, t: int | torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        emb = emb.expand(z.shape[0], -1, -1) if emb.shape[0] != z.shape[0] else emb
        mixed = self.autocast is not None and torch.is_grad_enabled()
        with torch.autocast(self.device_type, dtype=self.autocast) if mixed else nullcontext():
            return self.unet(z.to(self.dtype), t, encoder_hidden_states=emb.to(self.dtype)).sample.float()

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler for one optimisation: active only under fp16 autocast."""
        return torch.amp.GradScaler(self.device_type, enabled=self.autocast == torch.float16)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
        """One optimiser step on ``loss``: clear the gradients, backward (scaled), step, count the pass."""
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        self.counter.backward += 1
        scaler.step(optimizer)
        scaler.update()

    def eps(self, z: torch.Tensor, t: int | torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Noise prediction only."""
        self.counter.full += 1
        out = self._forward(z, t, emb)
        self._captured = None
        return out

    def eps_and_features(self, z: torch.Tensor, t: int, emb: torch.Tensor, resize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise prediction and features, from one full pass (resize=False: at latent resolution)."""
        self.counter.full += 1
        eps = self._forward(z, t, emb)
        return eps, self._take_features(resize)

    def features(self, z: torch.Tensor, t: int, emb: torch.Tensor, resize: bool = True) -> torch.Tensor:
        """Features only: the pass stops after up_blocks[2] (resize=False: at latent resolution)."""
        self.counter.feature_only += 1
        self._stop_early = True
        try:
            self._forward(z, t, emb)
        except _FeaturesReady:
            pass
        finally:
            self._stop_early = False
        return self._take_features(resize)

    def _take_features(self, resize: bool) -> torch.Tensor:
        raw, self._captured = self._captured, None
        return self.resize(raw) if resize else raw

    def resize(self, raw: torch.Tensor) -> torch.Tensor:
        """Features at supervision resolution (half the working image), fp32."""
        return F.interpolate(raw.float(), size=self.feature_size, mode="bilinear")
