"""Pictures of a drag: the input with its arrows, the output, and the handle trajectory drawn on it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ZOOM = 3  # toy images are small: draw on a 3x enlargement
HANDLE, TARGET, PATH, FOUND = (230, 30, 30), (40, 90, 255), (255, 255, 255), (20, 220, 60)

Point = tuple[float, float]


def enlarge(rgb: np.ndarray) -> Image.Image:
    """The RGB part of an image, enlarged ZOOM times (nearest neighbour, so pixels stay visible)."""
    image = Image.fromarray(np.ascontiguousarray(rgb[..., :3]))
    return image.resize((image.width * ZOOM, image.height * ZOOM), Image.NEAREST)


def _xy(point: Point) -> tuple[float, float]:
    return point[0] * ZOOM, point[1] * ZOOM


def _dot(draw: ImageDraw.ImageDraw, point: Point, colour, radius: float = 4) -> None:
    x, y = _xy(point)
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour, outline=(0, 0, 0))


def draw_arrows(rgb: np.ndarray, points: list[tuple[Point, Point]]) -> Image.Image:
    """The image with a handle (red) -> target (blue) arrow per point pair."""
    image = enlarge(rgb)
    draw = ImageDraw.Draw(image)
    for handle, target in points:
        draw.line([_xy(handle), _xy(target)], fill=PATH, width=2)
        _dot(draw, handle, HANDLE)
        _dot(draw, target, TARGET)
    return image


def draw_trajectory(rgb: np.ndarray, points: list[tuple[Point, Point]], trajectory: list[list[Point]],
                    found: list[Point] | None = None) -> Image.Image:
    """The image with each handle's path during the drag (white), its target (blue) and, if given,
    where the content was measured to be (green)."""
    image = enlarge(rgb)
    draw = ImageDraw.Draw(image)
    for i, (handle, target) in enumerate(points):
        path = [handle] + [step[i] for step in trajectory if i < len(step)]
        if len(path) > 1:
            draw.line([_xy(p) for p in path], fill=PATH, width=2)
        _dot(draw, handle, HANDLE, 3)
        _dot(draw, target, TARGET)
        if found:
            _dot(draw, found[i], FOUND, 3)
    return image


def save_case_pictures(folder: Path, case, output: np.ndarray, score, trajectory: list[list[Point]]) -> None:
    """<case>-before.png (input and arrows), <case>-after.png (output), <case>-trajectory.png."""
    folder.mkdir(parents=True, exist_ok=True)
    draw_arrows(case.image(), case.points).save(folder / f"{case.name}-before.png")
    enlarge(output).save(folder / f"{case.name}-after.png")
    draw_trajectory(output, case.points, trajectory, score.final_handles).save(folder / f"{case.name}-trajectory.png")
