"""Synthetic toy scenes: shaded, textured coloured shapes on smooth backgrounds, every object known.

A scene is plain data (frozen dataclasses); `render` turns it into pixels plus one coverage mask per
shape, so the position and extent of every object in every image are known exactly. The toy model is
trained on random scenes and the drag-quality cases are built from fixed ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

KINDS = ("disc", "ellipse", "box", "triangle")
TEXTURES = ("plain", "stripes", "dots")

# Saturated object colours, far from the muted background colours below, so an object can be told
# apart from the background (and from the other objects of a case) by its colour alone.
OBJECT_COLOURS = (
    (0.90, 0.15, 0.12), (0.10, 0.65, 0.20), (0.15, 0.30, 0.90), (0.95, 0.80, 0.10),
    (0.80, 0.20, 0.80), (0.05, 0.75, 0.80), (0.95, 0.50, 0.05), (0.55, 0.25, 0.90),
)


@dataclass(frozen=True)
class Shape:
    """One object. Sizes are half-extents in pixels along the shape's own axes (angle in radians)."""

    kind: str
    cx: float
    cy: float
    half_w: float
    half_h: float
    colour: tuple[float, float, float]
    angle: float = 0.0
    light_angle: float = -2.4  # direction the light comes from, in the shape's frame
    shading: float = 0.25  # brightness varies by +- this across the shape
    texture: str = "plain"
    texture_period: float = 8.0  # pixels
    texture_angle: float = 0.0
    texture_amp: float = 0.1

    def moved(self, dx: float, dy: float) -> "Shape":
        """The same object translated by (dx, dy) pixels."""
        return replace(self, cx=self.cx + dx, cy=self.cy + dy)

    def stretched(self, side: str, amount: float) -> "Shape":
        """An axis-aligned box or ellipse with one side ("left", "right", "top", "bottom") pulled out."""
        if abs(self.angle) > 1e-6:
            raise ValueError("only unrotated shapes can be stretched along an axis")
        sign = 1.0 if side in ("right", "bottom") else -1.0
        if side in ("left", "right"):
            return replace(self, cx=self.cx + sign * amount / 2, half_w=self.half_w + amount / 2)
        return replace(self, cy=self.cy + sign * amount / 2, half_h=self.half_h + amount / 2)


@dataclass(frozen=True)
class Background:
    """A smooth background: a two-colour gradient with gentle waves on top."""

    colour_a: tuple[float, float, float]
    colour_b: tuple[float, float, float]
    gradient_angle: float = 0.0
    radial: bool = False
    wave_amp: float = 0.03
    wave_period: float = 48.0
    wave_angle: float = 0.5


@dataclass(frozen=True)
class Scene:
    """A square image of `size` pixels: a background and shapes drawn in order (later on top)."""

    size: int
    background: Background
    shapes: tuple[Shape, ...]

    def with_shape(self, index: int, shape: Shape) -> "Scene":
        """The scene with shape `index` replaced."""
        shapes = list(self.shapes)
        shapes[index] = shape
        return replace(self, shapes=tuple(shapes))


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = np.arange(size, dtype=np.float32) + 0.5  # pixel centres
    return np.meshgrid(coords, coords)  # x, y


def _background(bg: Background, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    if bg.radial:
        s = np.hypot(x - size / 2, y - size / 2) / (size / math.sqrt(2))
    else:
        u = (x - size / 2) * math.cos(bg.gradient_angle) + (y - size / 2) * math.sin(bg.gradient_angle)
        s = u / size + 0.5
    s = np.clip(s, 0.0, 1.0)[..., None]
    rgb = np.asarray(bg.colour_a, np.float32) * (1 - s) + np.asarray(bg.colour_b, np.float32) * s
    phase = (x * math.cos(bg.wave_angle) + y * math.sin(bg.wave_angle)) * (2 * math.pi / bg.wave_period)
    return rgb * (1 + bg.wave_amp * np.sin(phase))[..., None]


def _local(shape: Shape, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(shape.angle), math.sin(shape.angle)
    dx, dy = x - shape.cx, y - shape.cy
    return c * dx + s * dy, -s * dx + c * dy


def _signed_distance(shape: Shape, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Approximate signed distance in pixels to the shape's outline (negative inside)."""
    w, h = shape.half_w, shape.half_h
    if shape.kind in ("disc", "ellipse"):
        r = np.sqrt((u / w) ** 2 + (v / h) ** 2)
        return (r - 1.0) * min(w, h)
    if shape.kind == "box":
        return np.maximum(np.abs(u) - w, np.abs(v) - h)
    if shape.kind == "triangle":  # apex up, base at v = +h
        slope = math.hypot(2 * h, w)
        side = (2 * h * np.abs(u) - w * (v + h)) / slope  # distance to the slanted sides
        return np.maximum(side, v - h)
    raise ValueError(f"unknown shape kind '{shape.kind}'; use one of {', '.join(KINDS)}")


def outline_point(shape: Shape, direction: tuple[float, float]) -> tuple[float, float]:
    """Where the ray from the shape's centre along `direction` (image axes) crosses its outline."""
    norm = math.hypot(*direction)
    ux, uy = direction[0] / norm, direction[1] / norm
    inside, outside = 0.0, 2 * math.hypot(shape.half_w, shape.half_h)
    for _ in range(40):  # bisection on the signed distance
        mid = (inside + outside) / 2
        u, v = _local(shape, np.float32(shape.cx + mid * ux), np.float32(shape.cy + mid * uy))
        if _signed_distance(shape, u, v) < 0:
            inside = mid
        else:
            outside = mid
    return shape.cx + inside * ux, shape.cy + inside * uy


def _shape_colour(shape: Shape, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    light = math.cos(shape.light_angle) * u / shape.half_w + math.sin(shape.light_angle) * v / shape.half_h
    brightness = 1.0 - shape.shading * np.clip(light, -1.0, 1.0)
    t = (u * math.cos(shape.texture_angle) + v * math.sin(shape.texture_angle)) * (2 * math.pi / shape.texture_period)
    if shape.texture == "stripes":
        brightness = brightness * (1 + shape.texture_amp * np.sin(t))
    elif shape.texture == "dots":
        t2 = (-u * math.sin(shape.texture_angle) + v * math.cos(shape.texture_angle)) * (2 * math.pi / shape.texture_period)
        brightness = brightness * (1 + shape.texture_amp * np.sin(t) * np.sin(t2))
    return np.asarray(shape.colour, np.float32) * brightness[..., None]


def render(scene: Scene) -> tuple[np.ndarray, list[np.ndarray]]:
    """Pixels (size x size x 3 uint8) and per-shape visible coverage masks (float32 in [0, 1])."""
    x, y = _grid(scene.size)
    image = _background(scene.background, x, y, scene.size)
    coverages = []
    for shape in scene.shapes:
        u, v = _local(shape, x, y)
        coverage = np.clip(0.5 - _signed_distance(shape, u, v), 0.0, 1.0).astype(np.float32)
        image = image * (1 - coverage[..., None]) + _shape_colour(shape, u, v) * coverage[..., None]
        coverages = [c * (1 - coverage) for c in coverages]  # what the new shape hides
        coverages.append(coverage)
    pixels = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    return pixels, coverages


def _muted_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    grey = rng.uniform(0.25, 0.8)
    return tuple(float(np.clip(grey + rng.uniform(-0.08, 0.08), 0, 1)) for _ in range(3))


def random_background(rng: np.random.Generator) -> Background:
    """A random smooth background of muted colours."""
    return Background(
        colour_a=_muted_colour(rng), colour_b=_muted_colour(rng),
        gradient_angle=float(rng.uniform(0, 2 * math.pi)), radial=bool(rng.random() < 0.3),
        wave_amp=float(rng.uniform(0.0, 0.06)), wave_period=float(rng.uniform(24, 80)),
        wave_angle=float(rng.uniform(0, math.pi)),
    )


def random_shape(rng: np.random.Generator, size: int, colour: tuple[float, float, float] | None = None) -> Shape:
    """A random object fully inside a `size` x `size` image."""
    kind = KINDS[rng.integers(len(KINDS))]
    scale = size / 128
    half_w = float(rng.uniform(9, 26) * scale)
    half_h = half_w if kind == "disc" else float(rng.uniform(9, 26) * scale)
    reach = math.hypot(half_w, half_h)
    margin = min(reach, size / 2 - 1)
    if colour is None:
        base = np.asarray(OBJECT_COLOURS[rng.integers(len(OBJECT_COLOURS))])
        colour = tuple(float(c) for c in np.clip(base + rng.uniform(-0.08, 0.08, 3), 0, 1))
    return Shape(
        kind=kind, cx=float(rng.uniform(margin, size - margin)), cy=float(rng.uniform(margin, size - margin)),
        half_w=half_w, half_h=half_h, colour=colour,
        angle=0.0 if rng.random() < 0.5 else float(rng.uniform(-0.6, 0.6)),
        light_angle=float(rng.uniform(0, 2 * math.pi)), shading=float(rng.uniform(0.05, 0.3)),
        texture=TEXTURES[rng.integers(len(TEXTURES))], texture_period=float(rng.uniform(6, 16) * scale),
        texture_angle=float(rng.uniform(0, math.pi)), texture_amp=float(rng.uniform(0.04, 0.15)),
    )


def random_scene(rng: np.random.Generator, size: int = 128, max_shapes: int = 3) -> Scene:
    """A random scene of 1..max_shapes objects (they may overlap a little)."""
    count = int(rng.integers(1, max_shapes + 1))
    return Scene(size, random_background(rng), tuple(random_shape(rng, size) for _ in range(count)))


def random_images(count: int, seed: int, size: int = 128) -> np.ndarray:
    """`count` rendered random scenes as a count x size x size x 3 uint8 array (reproducible by seed)."""
    rng = np.random.default_rng(seed)
    return np.stack([render(random_scene(rng, size))[0] for _ in range(count)])
