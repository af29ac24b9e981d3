"""The fixed drag-quality cases: toy scenes, point pairs, optional masks and where the content must end up.

Each case moves whole objects ("move") or pulls one side of a box or ellipse outwards ("stretch"), with
and without a mask, over short and long distances, with one or several point pairs. The ground truth
is the same scene rendered with the objects where the drag should put them (`expected`), and per point
the object it grabs, so `toy.measure` can find where the handle content really went in an output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .scenes import OBJECT_COLOURS, Scene, Shape, outline_point, random_background, render

CASE_SIZE = 128  # pixels; the toy model's native size
MASK_MARGIN = 6  # pixels the editable region reaches beyond the object's start and end extent

Point = tuple[float, float]


@dataclass(frozen=True)
class Grab:
    """One point pair and what it holds: object `shape` of the scene, moved or stretched on `side`."""

    handle: Point
    target: Point
    shape: int
    side: str | None = None  # None: the whole object moves; "left"/"right"/"top"/"bottom": stretch


@dataclass(frozen=True)
class DragCase:
    """A drag with its ground truth. `masked`: the request carries a mask of the editable region."""

    name: str
    scene: Scene
    grabs: tuple[Grab, ...]
    expected: Scene
    masked: bool

    @property
    def kind(self) -> str:
        return "stretch" if any(g.side for g in self.grabs) else "move"

    @property
    def points(self) -> list[tuple[Point, Point]]:
        return [(g.handle, g.target) for g in self.grabs]

    def image(self) -> np.ndarray:
        """The input as H x W x 4 RGBA uint8 (what an editor sends)."""
        return _rgba(render(self.scene)[0])

    def expected_image(self) -> np.ndarray:
        """The ideal output as H x W x 4 RGBA uint8."""
        return _rgba(render(self.expected)[0])

    def edit_region(self, shapes: set[int] | None = None) -> np.ndarray:
        """Pixels allowed to change (bool H x W): grabbed objects (or only ``shapes``) before and after,
        plus a margin."""
        _, before = render(self.scene)
        _, after = render(self.expected)
        touched = np.zeros((self.scene.size, self.scene.size), bool)
        for index in {g.shape for g in self.grabs} if shapes is None else shapes:
            touched |= (before[index] > 0.02) | (after[index] > 0.02)
        return _dilate(touched, MASK_MARGIN)

    def mask(self) -> np.ndarray | None:
        """The request's mask (uint8, 255 = editable) or None for an unmasked case."""
        return self.edit_region().astype(np.uint8) * 255 if self.masked else None


def _rgba(rgb: np.ndarray) -> np.ndarray:
    return np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)


def _dilate(region: np.ndarray, radius: int) -> np.ndarray:
    out = region.copy()
    padded = np.pad(region, radius)
    size = region.shape[0]
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            out |= padded[radius + dy:radius + dy + size, radius + dx:radius + dx + size]
    return out


def _object(kind: str, colour: int, centre: Point, half: tuple[float, float], rng: np.random.Generator) -> Shape:
    return Shape(
        kind=kind, cx=centre[0], cy=centre[1], half_w=half[0], half_h=half[1], colour=OBJECT_COLOURS[colour],
        light_angle=float(rng.uniform(0, 2 * math.pi)), shading=0.15,
        texture=("plain", "stripes", "dots")[int(rng.integers(3))], texture_period=float(rng.uniform(7, 12)),
        texture_angle=float(rng.uniform(0, math.pi)), texture_amp=0.08,
    )


def _clear_of(shape: Shape, others: list[Shape], gap: float) -> bool:
    reach = math.hypot(shape.half_w, shape.half_h)
    return all(math.hypot(shape.cx - o.cx, shape.cy - o.cy) > reach + math.hypot(o.half_w, o.half_h) + gap
               for o in others)


def _distractor(rng: np.random.Generator, avoid: list[Shape], colours_used: set[int]) -> Shape | None:
    """A still object of another colour away from everything the drag touches, if one fits."""
    colour = next(c for c in rng.permutation(len(OBJECT_COLOURS)) if int(c) not in colours_used)
    for _ in range(200):
        half = float(rng.uniform(8, 12))
        centre = (float(rng.uniform(half + 2, CASE_SIZE - half - 2)), float(rng.uniform(half + 2, CASE_SIZE - half - 2)))
        shape = _object(("disc", "box", "triangle")[int(rng.integers(3))], int(colour), centre, (half, half), rng)
        if _clear_of(shape, avoid, gap=8):
            return shape
    return None


def _build(name: str, seed: int, objects: list[tuple], masked: bool, distractor: bool = True) -> DragCase:
    """objects: (kind, colour, centre, half, grabs) with grabs as (handle, motion, side) tuples; a handle
    is a direction from the centre: the handle sits where that ray crosses the object's outline."""
    rng = np.random.default_rng(seed)
    shapes, expected, grabs = [], [], []
    for index, (kind, colour, centre, half, object_grabs) in enumerate(objects):
        shape = _object(kind, colour, centre, half, rng)
        after = shape
        for direction, (dx, dy), side in object_grabs:
            handle = tuple(round(c, 2) for c in outline_point(shape, direction))
            grabs.append(Grab(handle, (handle[0] + dx, handle[1] + dy), index, side))
            if side is None:
                after = shape.moved(dx, dy)
            else:
                after = after.stretched(side, abs(dx) + abs(dy))
        shapes.append(shape)
        expected.append(after)
    if distractor:
        extra = _distractor(rng, shapes + expected, {o[1] for o in objects})
        if extra is not None:
            shapes.append(extra)
            expected.append(extra)
    background = random_background(rng)
    return DragCase(name, Scene(CASE_SIZE, background, tuple(shapes)), tuple(grabs),
                    Scene(CASE_SIZE, background, tuple(expected)), masked)


# (kind, colour, centre, half extents, motion) of the single-pair moves; short ones move 12..16 px,
# long ones 28..40 px.
_SHORT_MOVES = [
    ("disc", 0, (50, 64), (16, 16), (14, 0)),
    ("box", 2, (70, 60), (15, 13), (-12, 0)),
    ("triangle", 3, (64, 72), (17, 15), (0, -14)),
    ("ellipse", 4, (60, 50), (20, 13), (0, 14)),
    ("disc", 5, (54, 56), (14, 14), (10, 10)),
    ("box", 1, (72, 70), (14, 16), (-11, -11)),
    ("ellipse", 6, (64, 64), (14, 19), (16, 0)),
    ("triangle", 7, (66, 58), (16, 14), (-12, 8)),
]
_LONG_MOVES = [
    ("disc", 2, (38, 64), (15, 15), (36, 0)),
    ("box", 0, (90, 64), (14, 14), (-36, 0)),
    ("triangle", 1, (64, 90), (16, 14), (0, -32)),
    ("ellipse", 3, (64, 36), (18, 12), (0, 34)),
    ("disc", 4, (40, 40), (14, 14), (28, 28)),
    ("box", 5, (88, 84), (13, 15), (-28, -26)),
    ("ellipse", 7, (40, 80), (13, 17), (30, -20)),
    ("triangle", 6, (86, 44), (15, 14), (-32, 24)),
]


def _all_cases() -> list[DragCase]:
    cases = []
    seed = 1000
    for group, moves in (("short", _SHORT_MOVES), ("long", _LONG_MOVES)):
        for i, (kind, colour, centre, half, motion) in enumerate(moves):
            seed += 1
            # the leading edge (pushed into the background) or the trailing edge (pulled across the object)
            edge = motion if i % 4 < 2 else (-motion[0], -motion[1])
            cases.append(_build(f"move-{group}-{i}{'-mask' if i % 2 else ''}", seed,
                                [(kind, colour, centre, half, [(edge, motion, None)])], masked=bool(i % 2)))
    # several pairs on one object (all move together), handles at several places of the outline
    for i, (kind, colour, centre, half, motion, offsets) in enumerate([
        ("box", 2, (48, 64), (18, 16), (24, 0), [(1, -1), (1, 1)]),
        ("disc", 6, (64, 44), (17, 17), (0, 26), [(-1, 0), (1, 0), (0, 1)]),
        ("ellipse", 0, (80, 76), (20, 14), (-20, -16), [(-1, 0), (0, -1)]),
        ("triangle", 4, (44, 80), (17, 15), (22, -18), [(0, -1), (-1, 1), (1, 1)]),
    ]):
        seed += 1
        cases.append(_build(f"move-multi-{i}{'-mask' if i % 2 else ''}", seed,
                            [(kind, colour, centre, half, [(o, motion, None) for o in offsets])], masked=bool(i % 2)))
    # two objects, one pair each
    for i, objects in enumerate([
        [("disc", 0, (36, 36), (13, 13), (16, 0)), ("box", 2, (92, 92), (13, 13), (-16, 0))],
        [("triangle", 3, (36, 90), (14, 12), (0, -18)), ("ellipse", 5, (92, 36), (15, 11), (0, 18))],
        [("box", 1, (40, 64), (12, 14), (-14, 12)), ("disc", 7, (88, 60), (13, 13), (14, -12))],
        [("ellipse", 4, (64, 34), (17, 11), (20, 0)), ("disc", 6, (64, 94), (13, 13), (-20, 0))],
    ]):
        seed += 1
        cases.append(_build(f"move-two-{i}{'-mask' if i % 2 else ''}", seed,
                            [(k, c, ctr, h, [(m, m, None)]) for k, c, ctr, h, m in objects], masked=bool(i % 2),
                            distractor=False))
    # stretch: pull one side (or two opposite sides) of a box or ellipse outwards
    for i, (kind, colour, centre, half, pulls) in enumerate([
        ("box", 0, (56, 64), (16, 14), [("right", 14)]),
        ("box", 2, (70, 64), (15, 15), [("left", 16)]),
        ("ellipse", 5, (64, 72), (14, 16), [("top", 14)]),
        ("box", 3, (64, 52), (16, 13), [("bottom", 18)]),
        ("ellipse", 1, (64, 64), (16, 12), [("left", 12), ("right", 12)]),
        ("box", 4, (64, 64), (13, 14), [("top", 12), ("bottom", 12)]),
        ("box", 6, (52, 60), (18, 12), [("right", 24)]),
        ("ellipse", 7, (76, 64), (15, 18), [("left", 22)]),
    ]):
        seed += 1
        grabs = []
        for side, amount in pulls:
            unit = {"right": (1, 0), "left": (-1, 0), "bottom": (0, 1), "top": (0, -1)}[side]
            grabs.append((unit, (unit[0] * amount, unit[1] * amount), side))  # the middle of that side
        cases.append(_build(f"stretch-{i}{'-mask' if i % 2 else ''}", seed,
                            [(kind, colour, centre, half, grabs)], masked=bool(i % 2)))
    return cases


@lru_cache(maxsize=1)
def all_cases() -> tuple[DragCase, ...]:
    """Every fixed case, in a fixed order (short and long moves, multi-point, two objects, stretches)."""
    return tuple(_all_cases())


def select_cases(count: int | None = None) -> list[DragCase]:
    """`count` cases spread over all groups (about every k-th case), alternately without and with a
    mask, or all of them."""
    cases = list(all_cases())
    if count is None or count >= len(cases):
        return cases
    if count < 1:
        raise ValueError("the number of cases must be at least 1")
    step = len(cases) / count
    picked = []
    for i in range(count):
        start = int(i * step)
        nearby = cases[start:start + max(2, int(step))]
        picked.append(next((c for c in nearby if c.masked == (i % 2 == 1)), cases[start]))
    return picked
