"""Drag strokes from Krita vector shapes, and the SVG of a new point pair (pure Python).

Krita's ``Shape.toSvg()`` gives one element (a path, or a group of them) with a ``transform``
in points (1/72 inch); ``addShapesFromSvg`` reads SVG user units as image pixels. Every
(sub)path is one stroke: its first anchor is the handle, its last anchor the target.
"""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from dragedit_protocol.editor.errors import UserError

Matrix = tuple[float, float, float, float, float, float]  # SVG order: a b c d e f
IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PREFIXED_ATTRIBUTE = re.compile(r'\s[\w.-]+:[\w.-]+="[^"]*"')
_TRANSFORM = re.compile(r"(matrix|translate|scale|rotate|skewX|skewY)\s*\(([^)]*)\)")
_PATH_TOKEN = re.compile(rf"([MmLlHhVvCcSsQqTtAaZz])|({_NUMBER})")
_ARGS = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "T": 2, "A": 7, "Z": 0}
_NOT_STROKES = ("rect", "circle", "ellipse", "text", "image")


def multiply(m: Matrix, n: Matrix) -> Matrix:
    """m x n: apply n first, then m."""
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = n
    return (a * a2 + c * b2, b * a2 + d * b2, a * c2 + c * d2, b * c2 + d * d2,
            a * e2 + c * f2 + e, b * e2 + d * f2 + f)


def apply(m: Matrix, point: tuple[float, float]) -> tuple[float, float]:
    a, b, c, d, e, f = m
    x, y = point
    return (a * x + c * y + e, b * x + d * y + f)


def parse_transform(text: str | None) -> Matrix:
    """An SVG transform list (matrix, translate, scale, rotate, skewX, skewY) as one matrix."""
    result = IDENTITY
    for name, args in _TRANSFORM.findall(text or ""):
        v = [float(x) for x in re.findall(_NUMBER, args)]
        if name == "matrix" and len(v) == 6:
            m = tuple(v)
        elif name == "translate" and v:
            m = (1.0, 0.0, 0.0, 1.0, v[0], v[1] if len(v) > 1 else 0.0)
        elif name == "scale" and v:
            m = (v[0], 0.0, 0.0, v[1] if len(v) > 1 else v[0], 0.0, 0.0)
        elif name == "rotate" and v:
            r = math.radians(v[0])
            m = (math.cos(r), math.sin(r), -math.sin(r), math.cos(r), 0.0, 0.0)
            if len(v) == 3:
                m = multiply((1.0, 0.0, 0.0, 1.0, v[1], v[2]), multiply(m, (1.0, 0.0, 0.0, 1.0, -v[1], -v[2])))
        elif name == "skewX" and v:
            m = (1.0, 0.0, math.tan(math.radians(v[0])), 1.0, 0.0, 0.0)
        elif name == "skewY" and v:
            m = (1.0, math.tan(math.radians(v[0])), 0.0, 1.0, 0.0, 0.0)
        else:
            raise ValueError(f"unreadable SVG transform {name}({args})")
        result = multiply(result, m)
    return result


def path_anchors(d: str) -> list[list[tuple[float, float]]]:
    """The anchor points (segment end points) of each subpath of an SVG path ``d``."""
    tokens = _PATH_TOKEN.findall(d)
    subpaths: list[list[tuple[float, float]]] = []
    x = y = start_x = start_y = 0.0
    command, i = "", 0
    while i < len(tokens):
        letter, number = tokens[i]
        if letter:
            command, i = letter, i + 1
            if command in "Zz":
                x, y = start_x, start_y
                if subpaths:
                    subpaths[-1].append((x, y))
                continue
        elif not command or command in "Zz":
            raise ValueError(f"SVG path data starts with a number or has numbers after Z: {d[:60]!r}")
        count = _ARGS[command.upper()]
        args = [float(n) for _, n in tokens[i:i + count]]
        if len(args) != count or any(letter for letter, _ in tokens[i:i + count]):
            raise ValueError(f"SVG path command {command} needs {count} numbers: {d[:60]!r}")
        i += count
        relative = command.islower()
        upper = command.upper()
        if upper == "H":
            x = args[0] + (x if relative else 0.0)
        elif upper == "V":
            y = args[0] + (y if relative else 0.0)
        else:
            ex, ey = args[-2], args[-1]
            x, y = (x + ex, y + ey) if relative else (ex, ey)
        if upper == "M":
            subpaths.append([(x, y)])
            start_x, start_y = x, y
            command = "l" if relative else "L"  # further pairs after a move are lines
        elif subpaths:
            subpaths[-1].append((x, y))
        else:
            subpaths.append([(0.0, 0.0), (x, y)])
    return subpaths


def svg_strokes(svg: str) -> list[list[tuple[float, float]]]:
    """Strokes (anchor lists, in the SVG's outer coordinates) of every path or line in a shape's SVG."""
    # toSvg() output uses namespace prefixes (sodipodi:, krita:) it does not declare: drop those attributes
    body = _PREFIXED_ATTRIBUTE.sub("", svg)
    try:
        root = ET.fromstring(f'<svg xmlns="http://www.w3.org/2000/svg">{body}</svg>')
    except ET.ParseError as exc:
        raise ValueError(f"unreadable shape SVG ({exc})")
    strokes: list[list[tuple[float, float]]] = []

    def walk(element: ET.Element, matrix: Matrix) -> None:
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in ("defs", "marker", "clipPath", "mask", "pattern"):
            return
        matrix = multiply(matrix, parse_transform(element.get("transform")))
        if tag == "path":
            subpaths = path_anchors(element.get("d", ""))
        elif tag == "line":
            subpaths = [[(float(element.get("x1", 0)), float(element.get("y1", 0))),
                         (float(element.get("x2", 0)), float(element.get("y2", 0)))]]
        elif tag == "polyline":
            numbers = [float(n) for n in re.findall(_NUMBER, element.get("points", ""))]
            subpaths = [list(zip(numbers[0::2], numbers[1::2]))]
        elif tag in _NOT_STROKES:
            raise UserError(f"The drag points layer holds a shape ({tag}) that is not a line or path",
                            "draw drag points as lines or paths (first point = handle, last = target) "
                            "and move other shapes to another layer")
        else:
            subpaths = []
        strokes.extend([apply(matrix, p) for p in sub] for sub in subpaths)
        for child in element:
            walk(child, matrix)

    for child in root:
        walk(child, IDENTITY)
    return strokes


def pair_svg(number: int, handle: tuple[float, float], target: tuple[float, float], line_width: float) -> str:
    """An SVG arrow for a new point pair, in image pixels: red dot = handle, blue dot = target."""
    (hx, hy), (tx, ty) = handle, target
    w = max(line_width, 0.5)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg"><defs>'
        f'<marker id="dragedit-handle-{number}" markerWidth="4" markerHeight="4" refX="2" refY="2" '
        'markerUnits="strokeWidth"><circle cx="2" cy="2" r="1.6" fill="#e02020"/></marker>'
        f'<marker id="dragedit-target-{number}" markerWidth="4" markerHeight="4" refX="2" refY="2" '
        'markerUnits="strokeWidth"><circle cx="2" cy="2" r="1.6" fill="#2060ff"/></marker></defs>'
        f'<path id="dragedit-pair-{number}" d="M {hx:.2f} {hy:.2f} L {tx:.2f} {ty:.2f}" fill="none" '
        f'stroke="#ffd000" stroke-width="{w:.2f}" marker-start="url(#dragedit-handle-{number})" '
        f'marker-end="url(#dragedit-target-{number})"/></svg>'
    )
