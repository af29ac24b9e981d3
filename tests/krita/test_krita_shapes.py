"""Reading drag strokes out of the SVG that Krita's Shape.toSvg() prints."""
import math

import pytest

from dragedit_protocol.editor.errors import UserError
from dragedit_krita.shapes import pair_svg, parse_transform, path_anchors, svg_strokes, apply

# verbatim toSvg() output of Krita 5.1.5 (doc at 144 ppi, SVG path "M 5 6 L 25 20" in pixels)
KRITA_PATH = ('<path id="shape0" transform="matrix(0.5 0 0 0.5 2.5 3)" fill="none" stroke="#ff0000" '
              'stroke-width="1" stroke-linecap="butt" stroke-linejoin="miter" stroke-miterlimit="2" '
              'marker-start="url(#lineMarker0)" d="M0 0L20 14" sodipodi:nodetypes="cc"/>')
KRITA_GROUP = ('<g id="group0" transform="matrix(0.5 0 0 0.5 1.5 2)" fill="none">\n  <path id="shape0" '
               'transform="translate(1, 1)" fill="#000000" stroke-opacity="0" stroke="#000000" stroke-width="0" '
               'd="M0 0L5 5" sodipodi:nodetypes="cc"/>\n </g>')


def test_a_krita_path_gives_its_anchors_in_points():
    assert svg_strokes(KRITA_PATH) == [[(2.5, 3.0), (12.5, 10.0)]]


def test_groups_compose_their_transforms():
    assert svg_strokes(KRITA_GROUP) == [[(2.0, 2.5), (4.5, 5.0)]]


def test_curves_use_end_points_and_keep_every_anchor():
    assert path_anchors("M0 0C1 1 2 2 8 10L13 13") == [[(0.0, 0.0), (8.0, 10.0), (13.0, 13.0)]]


def test_relative_commands_and_implicit_lines():
    assert path_anchors("m 1 2 3 4 h 5 v -1 l 1 1") == [[(1, 2), (4, 6), (9, 6), (9, 5), (10, 6)]]


def test_subpaths_are_separate_strokes_and_close_returns_to_start():
    assert path_anchors("M 0 0 L 5 5 M 10 10 L 12 10 L 12 12 Z") == [
        [(0, 0), (5, 5)], [(10, 10), (12, 10), (12, 12), (10, 10)]]


def test_every_command_moves_the_pen_to_its_end_point():
    d = "M 0 0 Q 1 1 2 2 T 4 4 S 5 5 6 6 A 3 3 0 0 1 9 9 H 10 V 11"
    assert path_anchors(d) == [[(0, 0), (2, 2), (4, 4), (6, 6), (9, 9), (10, 9), (10, 11)]]


def test_malformed_path_data_is_rejected():
    with pytest.raises(ValueError):
        path_anchors("M 1")
    with pytest.raises(ValueError):
        path_anchors("5 5 L 1 1")


@pytest.mark.parametrize("text,point,expected", [
    ("translate(12, 10)", (1, 1), (13, 11)),
    ("translate(3)", (1, 1), (4, 1)),
    ("scale(2)", (1, 3), (2, 6)),
    ("scale(2, 3)", (1, 1), (2, 3)),
    ("rotate(90)", (1, 0), (0, 1)),
    ("rotate(90 1 1)", (2, 1), (1, 2)),
    ("translate(10,0) scale(2)", (1, 1), (12, 2)),
    ("matrix(1 0 0 1 5 6)", (0, 0), (5, 6)),
    ("skewX(45)", (0, 1), (1, 1)),
])
def test_transforms(text, point, expected):
    x, y = apply(parse_transform(text), point)
    assert math.isclose(x, expected[0], abs_tol=1e-9) and math.isclose(y, expected[1], abs_tol=1e-9)


def test_lines_and_polylines_count_and_markers_are_skipped():
    svg = ('<defs><marker id="m"><path d="M0 0 L 1 1"/></marker></defs>'
           '<line x1="1" y1="2" x2="3" y2="4"/><polyline points="0,0 5,5 9,1"/>')
    assert svg_strokes(svg) == [[(1, 2), (3, 4)], [(0, 0), (5, 5), (9, 1)]]


def test_shapes_that_are_not_lines_are_a_clear_error():
    with pytest.raises(UserError, match=r"holds a shape \(ellipse\) that is not a line or path.*lines or paths"):
        svg_strokes('<ellipse id="shape1" cx="3" cy="3" rx="2" ry="1"/>')


def test_the_new_pair_arrow_round_trips():
    svg = pair_svg(3, (10.0, 20.0), (30.5, 20.0), line_width=1.0)
    assert 'marker-start="url(#dragedit-handle-3)"' in svg and "#e02020" in svg and "#2060ff" in svg
    inner = svg.split("</defs>", 1)[1].rsplit("</svg>", 1)[0]
    assert svg_strokes(inner) == [[(10.0, 20.0), (30.5, 20.0)]]
