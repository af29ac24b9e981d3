"""What a job's point tracking will hold in memory, checked against what the device has before any work.

The tracking tensors grow with points x window: every method samples a (2 r2 + 1)^2 window of
C-channel features around each handle, and StableDrag's learned tracker also builds one K x K Gram
matrix per point (K = the window's positions) and its eigen-decomposition. Within the published
limits (64 points, r2 = 32) that is about 10 GB, so a job whose estimate exceeds the device's free
memory is refused with a sentence instead of running the device out of memory.
"""
from __future__ import annotations

import os
from types import ModuleType

import torch

from .api import EditError
from .features import FEATURE_BLOCK

FLOAT_BYTES = 4


def feature_channels(unet: torch.nn.Module) -> int:
    """Channels of the drag features (the output of up_blocks[FEATURE_BLOCK])."""
    return list(reversed(unet.config.block_out_channels))[FEATURE_BLOCK]


def tracking_window_bytes(p: dict, points: int, channels: int) -> int:
    """The sampled windows of every handle (N x C x K) and the copy the tracker makes of them."""
    positions = (2 * int(p.get("r2", 0)) + 1) ** 2
    return 2 * points * channels * positions * FLOAT_BYTES


def estimated_bytes(method: ModuleType, p: dict, points: int, channels: int) -> int:
    """The job's tracking memory: the windows, plus what the method's own ``work_bytes`` adds."""
    extra = method.work_bytes(p, points, channels) if hasattr(method, "work_bytes") else 0
    return tracking_window_bytes(p, points, channels) + extra


def available_bytes(device: torch.device) -> int | None:
    """Free memory of the device (a GPU's free memory, else the machine's available RAM); None if unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_work(method: ModuleType, p: dict, points: int, channels: int, device: torch.device) -> None:
    """Refuse (EditError too_much_work) a job whose tracking would need more memory than the device has free."""
    need = estimated_bytes(method, p, points, channels)
    have = available_bytes(device)
    if have is None or need <= have:
        return
    r2 = int(p.get("r2", 0))
    raise EditError(
        "too_much_work",
        f"this drag's point tracking needs about {need / 2**30:.1f} GB ({points} point(s) x a window of "
        f"{(2 * r2 + 1) ** 2} positions, r2 = {r2}), more than the {have / 2**30:.1f} GB free on {device}",
        "use fewer points or a smaller r2 (the tracking radius), or free memory on the device")
