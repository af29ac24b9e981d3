"""What the daemon and the CLI exchange with the engine: requests, progress, results, errors."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np


@dataclass
class DragRequest:
    """One drag edit of a full-size layer.

    image: H x W x 4 uint8 RGBA; mask: H x W uint8 (non-zero = editable) or None for the
    default region around the points (``dragedit_protocol.regions``); points: ((handle_x,
    handle_y), (target_x, target_y)) in image pixels. model / vae: None for the engine's own.
    """

    image: np.ndarray
    points: list[tuple[tuple[float, float], tuple[float, float]]]
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    mask: np.ndarray | None = None
    seed: int | None = None
    prompt: str = ""
    model: str | None = None
    preview_every: int = 0
    vae: str | None = None


@dataclass
class PrepareRequest:
    """Get an image ready for dragging: the RecLoRA and inversion a drag of it will look up.

    image / mask / model / vae / prompt as in DragRequest (the mask fixes the working region; without
    one the whole image is the region); method None: every method with its defaults, else that
    method with ``params``.
    """

    image: np.ndarray
    mask: np.ndarray | None = None
    method: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    prompt: str = ""
    model: str | None = None
    vae: str | None = None


@dataclass
class PrepareResult:
    """What a prepare did: per phase, whether every part of it was already cached; seconds per phase."""

    cache_hits: dict[str, bool]
    timings: dict[str, float]


@dataclass
class Progress:
    """A progress report: phase is one of load, lora, inversion, drag, denoise (and prepare: a
    prepare's LoRA and inversion steps counted together)."""

    phase: str
    step: int
    total: int
    eta_s: float | None = None
    cached: bool = False
    preview: np.ndarray | None = None  # h x w x 3 uint8, small
    handles: list[tuple[float, float]] | None = None  # current handles in image pixels


@dataclass
class DragResult:
    """The edited full-size image and what happened on the way."""

    image: np.ndarray  # H x W x 4 uint8, same size as the request's image
    handles: list[tuple[float, float]]  # final handle positions in image pixels
    timings: dict[str, float]  # seconds per phase
    seed: int
    cache_hits: dict[str, bool]  # phase -> served from cache
    stats: dict[str, Any] = field(default_factory=dict)  # e.g. unet forward/backward counts


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]


class EditError(Exception):
    """A job failure a user can act on: code (machine readable), message and hint."""

    def __init__(self, code: str, message: str, hint: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


class JobCancelled(Exception):
    """Raised inside a method when the job's cancel check returns True."""


DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@dataclass
class EngineSettings:
    """How the engine loads its model and where it keeps caches.

    model: "toy" (the model shipped with DragEdit), a hub id, a diffusers folder or a single
    ``.safetensors`` checkpoint. model_config: for a single-file checkpoint, the diffusers SD-1.5
    folder or hub id that gives its architecture and tokenizer (None: diffusers' default, fetched
    from the hub once). device: "auto" | "cpu" | "cuda" | "cuda:N". dtype: the precision mode
    (precision.py): "auto" (bf16, or fp16 without bf16, on a GPU; fp32 on CPU) | "authors" | "fp32"
    | "fp16" | "bf16". vae: a VAE used instead of the model's own (hub id, diffusers folder or
    .safetensors file; None: the model's). work_size: the short side of the region the model works
    on (a multiple of 8); None: the model's native size (512 for SD-1.5, 128 for the toy model).
    """

    model: str = DEFAULT_MODEL
    model_config: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    vae: str | None = None
    cache_dir: str | None = None  # None: <user data folder>/cache
    work_size: int | None = None
    memory_cache_items: int = 8
    reference_cache_items: int = 2  # images whose mutual-attention keys/values are kept (~0.8 GB each, SD-1.5 bf16)
    disk_cache_bytes: int = 2 * 1024**3


def describe_source(source: str) -> str:
    """What kind of model source a string names: toy, folder, single_file or hub."""
    if source == "toy":
        return "toy"
    path = Path(source).expanduser()
    if path.is_dir():
        return "folder"
    if path.suffix in (".safetensors", ".ckpt", ".pt", ".pth", ".bin"):
        return "single_file"
    return "hub"
