"""One self-contained HTML page of a quality run: the tables, then per case the input with its arrows,
every method's output and the ground truth side by side (pictures embedded, so the page can be mailed)."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .cases import DragCase
from .pictures import draw_arrows, draw_trajectory

THUMB = 256  # pixels per picture on the page

STYLE = """
body { font-family: sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { display: inline-block; margin: 0 6px 6px 0; text-align: center; font-size: 0.85em; }
figure img { display: block; width: %dpx; image-rendering: pixelated; }
.case { margin-bottom: 1.2em; }
""" % THUMB


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.resize((THUMB, THUMB), Image.NEAREST).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(image: Image.Image, caption: str) -> str:
    return f'<figure><img src="{_png(image)}" alt="{html.escape(caption)}"><figcaption>{caption}</figcaption></figure>'


def _cell(value: Any) -> str:
    if value is None:
        return "inf"  # the reports' JSON writes an infinite PSNR (identical pixels) as null
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def summary_tables(report: dict[str, Any]) -> str:
    """The per-method table, the per-group table and, where measured, the drag-back table."""
    methods = report["methods"]
    radii = report.get("dai_radii", [])
    rows = [[m, s["cases"], s["mean_distance_px"], s["moved_fraction"], s["psnr_outside_db"],
             s.get("raw_psnr_outside_db"), *[s["dai"][str(r)] for r in radii], s["success_fraction"],
             s["seconds_per_case"]] for m, s in methods.items()]
    parts = [_table(["method", "cases", "dist px", "moved", "PSNR out dB", "raw PSNR out dB",
                     *[f"DAI r={r}" for r in radii], "success", "s/case"], rows)]
    group_rows = [[m, name, g["cases"], g["moved_fraction"], g["psnr_outside_db"], g.get("raw_psnr_outside_db"),
                   g["success_fraction"]] for m, s in methods.items() for name, g in s["groups"].items()]
    parts.append(_table(["method", "group", "cases", "moved", "PSNR out dB", "raw PSNR out dB", "success"],
                        group_rows))
    back = [[m, s["drag_back"]["psnr_db"], s["drag_back"]["ssim"]] for m, s in methods.items() if "drag_back" in s]
    if back:
        parts.append("<p>Drag-back (DragLoRA's evaluation): drag, then drag the result back from the targets "
                     "to the handles; similarity to the input.</p>")
        parts.append(_table(["method", "PSNR dB", "SSIM"], back))
    return "\n".join(parts)


def write_report(path: Path, report: dict[str, Any], cases: list[DragCase],
                 outputs: dict[str, dict[str, np.ndarray]], trajectories: dict[str, dict[str, list]]) -> None:
    """The HTML page: `report` is bench quality's JSON report, `outputs[method][case]` its output images,
    `trajectories[method][case]` the handle path the method reported."""
    sections = []
    for case in cases:
        figures = [_figure(draw_arrows(case.image(), case.points), "input")]
        for method, per_case in outputs.items():
            if case.name not in per_case:
                continue
            numbers = next(c for c in report["methods"][method]["per_case"] if c["case"] == case.name)
            caption = (f"{html.escape(method)}: moved {numbers['moved_fraction']:.2f}, "
                       f"PSNR out {_cell(numbers['psnr_outside_db'])} dB")
            figures.append(_figure(draw_trajectory(per_case[case.name], case.points, trajectories[method][case.name],
                                                   [tuple(p) for p in numbers["final_handles"]]), caption))
        figures.append(_figure(draw_arrows(case.expected_image(), []), "ground truth"))
        mask = " (with a selection)" if case.masked else ""
        sections.append(f'<div class="case"><h3>{html.escape(case.name)}{mask}</h3>{"".join(figures)}</div>')
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>DragEdit quality: {html.escape(str(report['model']))}</title>
<style>{STYLE}</style></head><body>
<h1>DragEdit drag quality</h1>
<p>Model {html.escape(str(report['model']))}, {len(cases)} case(s), {report['image_size']} px.
Pictures: red handle, blue target, white the path the method tracked, green where the content really is.</p>
{summary_tables(report)}
<h2>Cases</h2>
{"".join(sections)}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
