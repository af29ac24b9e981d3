"""Byte-level pixel helpers shared by the plug-ins (pure Python, fast on whole rows and runs).

Images are row-major bytes with ``channels`` bytes per pixel; masks have one byte per pixel
(0 = keep, 255 = editable, values between blend).
"""
from __future__ import annotations

import re

from .errors import UserError
from .geometry import Rect

_FULL_RUNS = re.compile(rb"\xff+")
_PARTIAL_RUNS = re.compile(rb"[\x01-\xfe]+")


def swap_red_blue(data: bytes) -> bytes:
    """BGRA -> RGBA (and back: the swap is its own inverse)."""
    out = bytearray(data)
    out[0::4] = data[2::4]
    out[2::4] = data[0::4]
    return bytes(out)


def crop(data: bytes, width: int, channels: int, rect: Rect) -> bytes:
    """The pixels of ``rect`` (inside a width-wide image) as a tightly packed buffer."""
    stride, row = width * channels, rect.width * channels
    start = rect.x * channels
    return b"".join(data[y * stride + start:y * stride + start + row] for y in range(rect.y, rect.bottom))


def selection_mask(data: bytes, width: int, height: int) -> bytes:
    """A selection's one-byte-per-pixel data as a mask.

    Raises UserError when nothing is selected inside the layer.
    """
    if len(data) != width * height:
        raise ValueError(f"selection has {len(data)} bytes, expected {width}x{height}")
    if not data.strip(b"\x00"):
        raise UserError("The selection does not cover the layer",
                        "select the region that may change inside the layer, or deselect all to edit the area "
                        "around the points")
    return bytes(data)


def mask_bounds(mask: bytes, width: int, height: int) -> Rect | None:
    """The bounding rectangle of the non-zero mask pixels (None when the mask is empty)."""
    rows = [y for y in range(height) if mask[y * width:(y + 1) * width].strip(b"\x00")]
    if not rows:
        return None
    left, right = width, 0
    for y in rows:
        row = mask[y * width:(y + 1) * width]
        left = min(left, width - len(row.lstrip(b"\x00")))
        right = max(right, len(row.rstrip(b"\x00")))
    return Rect(left, rows[0], right - left, rows[-1] + 1 - rows[0])


def blend(source: bytes, edited: bytes, mask: bytes, channels: int = 4) -> bytes:
    """source where the mask is 0, edited where it is 255, a linear mix in between."""
    if len(source) != len(edited) or len(source) != len(mask) * channels:
        raise ValueError("source, edited and mask sizes do not match")
    out = bytearray(source)
    for run in _FULL_RUNS.finditer(mask):
        a, b = run.start() * channels, run.end() * channels
        out[a:b] = edited[a:b]
    for run in _PARTIAL_RUNS.finditer(mask):
        a, b = run.start() * channels, run.end() * channels
        alphas = bytearray(b - a)  # the run's mask value repeated for each channel
        for c in range(channels):
            alphas[c::channels] = run.group()
        out[a:b] = bytes((s * (255 - m) + e * m + 127) // 255 for s, e, m in zip(source[a:b], edited[a:b], alphas))
    return bytes(out)
