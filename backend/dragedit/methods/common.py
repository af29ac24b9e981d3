"""Parameters every method shares (LoRA, inversion, feather) and the check that handles reached."""
from __future__ import annotations

import torch

from .base import Param


def shared_params(lora_steps: int, inversion_strength: float) -> tuple[Param, ...]:
    """RecLoRA, inversion and paste parameters with a method's published defaults."""
    return (
        Param("inversion_strength", "float", inversion_strength,
              "How far the image is inverted before dragging (0.7 = timestep 681 of 1000).", 0.02, 1.0),
        Param("lora_steps", "int", lora_steps, "Reconstruction LoRA training steps (0 = no LoRA).", 0, 2000),
        Param("lora_rank", "int", 16, "Reconstruction LoRA rank.", 1, 256),
        Param("lora_lr", "float", 5e-4, "Reconstruction LoRA learning rate (AdamW).", 1e-6, 1e-1),
        Param("lora_batch", "int", 4, "Reconstruction LoRA batch size.", 1, 16),
        Param("feather", "int", 4, "Soft edge, in image pixels, where the result blends into the untouched image.", 0, 256,
              advanced=False),
    )


def all_reached(handles: torch.Tensor, targets: torch.Tensor, reach: float = 2.0) -> bool:
    """True when every handle is within ``reach`` feature pixels of its target."""
    return bool(((targets - handles).norm(dim=-1) < reach).all())
