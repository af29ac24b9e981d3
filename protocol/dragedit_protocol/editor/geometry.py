"""Rectangles and drag point pairs in editor pixel coordinates.

Editors give positions as continuous coordinates (a pixel i covers [i, i + 1)); the daemon
expects pixel-index coordinates (0 .. width - 1). ``PointPair`` holds continuous coordinates;
``to_index`` converts them for the daemon.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from .errors import UserError

Point = tuple[float, float]


@dataclass(frozen=True)
class Rect:
    """An integer rectangle: x, y of the top-left corner, width and height."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def intersect(self, other: Rect) -> Rect:
        """The overlap of two rectangles (empty rectangle when they do not overlap)."""
        x, y = max(self.x, other.x), max(self.y, other.y)
        right, bottom = min(self.right, other.right), min(self.bottom, other.bottom)
        return Rect(x, y, max(0, right - x), max(0, bottom - y))

    def expanded(self, margin: int) -> Rect:
        return Rect(self.x - margin, self.y - margin, self.width + 2 * margin, self.height + 2 * margin)

    def contains(self, point: Point) -> bool:
        """Whether a continuous point lies inside (edges included)."""
        return self.x <= point[0] <= self.right and self.y <= point[1] <= self.bottom

    def translated(self, dx: int, dy: int) -> Rect:
        return Rect(self.x + dx, self.y + dy, self.width, self.height)

    @staticmethod
    def around(points: Iterable[Point]) -> Rect:
        """The smallest integer rectangle holding every point (pixels the points fall in)."""
        pts = list(points)
        x0 = math.floor(min(p[0] for p in pts))
        y0 = math.floor(min(p[1] for p in pts))
        x1 = math.floor(max(p[0] for p in pts)) + 1
        y1 = math.floor(max(p[1] for p in pts)) + 1
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def union(self, other: Rect) -> Rect:
        if self.is_empty:
            return other
        if other.is_empty:
            return self
        x, y = min(self.x, other.x), min(self.y, other.y)
        return Rect(x, y, max(self.right, other.right) - x, max(self.bottom, other.bottom) - y)


@dataclass(frozen=True)
class PointPair:
    """One drag: a handle moved towards a target, continuous coordinates in image pixels."""

    handle: Point
    target: Point

    def translated(self, dx: float, dy: float) -> PointPair:
        return PointPair((self.handle[0] + dx, self.handle[1] + dy), (self.target[0] + dx, self.target[1] + dy))

    def to_index(self, width: int, height: int) -> tuple[float, float, float, float]:
        """(hx, hy, tx, ty) as pixel-index coordinates inside a width x height image.

        A continuous coordinate c in [0, width] maps to c - 0.5, clamped to [0, width - 1],
        so a point on the outer edge of a border pixel still counts as that pixel.
        """
        def index(c: float, size: int) -> float:
            return min(max(c - 0.5, 0.0), float(size - 1))

        return (index(self.handle[0], width), index(self.handle[1], height),
                index(self.target[0], width), index(self.target[1], height))


def place_new_pair(count: int, area: Rect) -> PointPair:
    """Where 'Add point pair' puts pair number ``count + 1``: a short arrow inside ``area`` (the
    selection's bounds, or the image), each new one on its own row so that arrows never overlap."""
    y = area.y + area.height * (0.3 + 0.1 * (count % 5))
    return PointPair((area.x + area.width * 0.35, y), (area.x + area.width * 0.6, y))


def pairs_from_strokes(strokes: Sequence[Sequence[Point]]) -> list[PointPair]:
    """One pair per stroke: its first anchor is the handle, its last anchor the target."""
    pairs = []
    for number, anchors in enumerate(strokes, start=1):
        if len(anchors) < 2:
            raise UserError(f"Drag stroke {number} has a single point",
                            "draw each stroke from the handle to the target (at least two points), or delete it")
        handle, target = anchors[0], anchors[-1]
        if math.dist(handle, target) < 0.5:
            raise UserError(f"Drag stroke {number} ends where it starts",
                            "move its last point to where the handle should go")
        pairs.append(PointPair(tuple(map(float, handle)), tuple(map(float, target))))
    return pairs


def check_pairs_inside(pairs: Sequence[PointPair], bounds: Rect, what: str = "layer") -> None:
    """Raise a UserError naming the first handle or target outside ``bounds``."""
    if not pairs:
        raise UserError("There are no drag points", "add a point pair (handle -> target) first")
    for number, pair in enumerate(pairs, start=1):
        for name, point in (("handle", pair.handle), ("target", pair.target)):
            if not all(map(math.isfinite, point)):
                raise UserError(f"The {name} of point pair {number} has no valid position", "redraw this pair")
            if not bounds.contains(point):
                raise UserError(
                    f"The {name} of point pair {number} ({point[0]:.0f}, {point[1]:.0f}) is outside the {what} "
                    f"({bounds.width}x{bounds.height} at {bounds.x}, {bounds.y})",
                    f"move it inside the {what}",
                )
