"""Precision modes (``--precision``): which float types a job's phases use.

- ``fp32``: fp32 weights and passes everywhere (the CPU default).
- ``bf16`` / ``fp16``: the weights in that type throughout, every pass in it (``auto`` on a GPU: bf16,
  or fp16 where the GPU has no bf16).
- ``authors``: what the authors' UIs do on a GPU. Weights at rest in fp16 (inversion, denoising,
  VAE); the RecLoRA trains with fp16 mixed precision (fp16 base weights, fp32 LoRA weights, fp16
  autocast, a gradient scaler); for the drag the UNet's base weights are cast to fp32 and every pass
  that builds a graph runs under fp16 autocast with a gradient scaler, while passes without gradients
  (F0, the mask reference, the original trajectory, DragLoRA's ILFA) run in fp32.

The rule "autocast only where gradients flow" is this project's way of saying which passes the
authors run in fp32; the one place it differs from their code is DragLoRA's ILFA-only iterations,
whose tracking pass (no gradients here) runs in fp32 where theirs runs under autocast.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .api import EditError

PRECISION_MODES = ("auto", "authors", "bf16", "fp16", "fp32")

_TYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Precision:
    """A resolved precision mode.

    weights: the model's weights at rest; drag_weights: the UNet's base weights during the drag;
    autocast: the type passes with gradients run in under autocast (None: no autocast).
    """

    name: str
    weights: torch.dtype
    drag_weights: torch.dtype
    autocast: torch.dtype | None = None

    @property
    def scales_gradients(self) -> bool:
        """fp16 autocast needs a gradient scaler (small gradients underflow in fp16)."""
        return self.autocast == torch.float16


def resolve_precision(mode: str, device: torch.device) -> Precision:
    """The precision for a mode name on a device; raises EditError for an unknown name."""
    if mode == "auto":
        if device.type != "cuda":
            mode = "fp32"
        else:
            mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if mode == "authors":
        return Precision("authors", torch.float16, torch.float32, torch.float16)
    if mode not in _TYPES:
        raise EditError("bad_setting", f"unknown precision '{mode}'", f"use one of {', '.join(PRECISION_MODES)}")
    return Precision(mode, _TYPES[mode], _TYPES[mode])


def cast_base_weights(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast a module's own weights to ``dtype`` in place, leaving LoRA adapter weights (fp32) alone."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "lora_" not in name and param.dtype != dtype:
                param.data = param.data.to(dtype)
