"""The short variant of `dragedit bench quality`: a few cases, one method, on the shipped toy model."""
from __future__ import annotations

import json
import math

from dragedit.bench import quality
from dragedit.toy.cases import all_cases
from dragedit.toy.measure import CaseScore
from dragedit.toy.params import toy_params


def test_toy_params_scale_only_the_spatial_defaults():
    spec = {"params": [
        {"name": "r1", "type": "int", "default": 4}, {"name": "r2", "type": "int", "default": 12},
        {"name": "beta", "type": "float", "default": 4.0}, {"name": "lr", "type": "float", "default": 0.02},
    ]}
    assert toy_params(spec) == {"r1": 1, "r2": 3, "beta": 1.0}
    dragdiffusion = {"params": [{"name": "r1", "type": "int", "default": 1}, {"name": "r2", "type": "int", "default": 3}]}
    assert toy_params(dragdiffusion) == {"r1": 1, "r2": 3}


def _run(case, moved: float, psnr_db: float) -> quality.CaseRun:
    score = CaseScore([(0.0, 0.0)], [10 * (1 - moved)], [10.0], moved, psnr_db, moved > 0.9)
    return quality.CaseRun(case, score, 1.0, {})


def test_summary_splits_masked_unmasked_move_and_stretch():
    cases = {c.name: c for c in all_cases()}
    runs = [_run(cases["move-short-0"], 0.5, 20.0), _run(cases["move-short-1-mask"], 1.0, math.inf),
            _run(cases["stretch-1-mask"], 0.0, 40.0)]
    summary = quality.summarise(runs)
    groups = summary["groups"]
    assert {name: g["cases"] for name, g in groups.items()} == {"masked": 2, "unmasked": 1, "move": 2, "stretch": 1}
    assert groups["masked"]["moved_fraction"] == 0.5 and groups["masked"]["success_fraction"] == 0.5
    assert groups["unmasked"]["psnr_outside_db"] == 20.0
    assert groups["masked"]["psnr_outside_db"] == 43.01  # pooled MSE: the identical case adds zero error
    assert groups["move"]["moved_fraction"] == 0.75 and summary["moved_fraction"] == 0.5


def test_the_json_says_where_the_method_believes_the_handles_got():
    case = {c.name: c for c in all_cases()}["move-short-0"]  # one point, (66, 64) -> (80, 64)
    (handle, target), = case.points
    run = _run(case, 0.5, 20.0)
    assert run.as_dict()["tracker_distance_px"] is None  # no tracked handles reported
    run.tracked_handles = [target]
    assert run.as_dict()["tracker_distance_px"] == 0.0
    run.tracked_handles = [handle]
    assert run.as_dict()["tracker_distance_px"] == 14.0 and run.as_dict()["tracker_final_handles"] == [[66.0, 64.0]]


def test_an_unknown_method_is_a_clear_error(tmp_path, capsys):
    assert quality.main(["--method", "nope", "--cases", "1", "--out", str(tmp_path)]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_dragdiffusion_moves_content_towards_the_target(tmp_path):
    report_path = tmp_path / "quality.json"
    code = quality.main(["--method", "dragdiffusion", "--cases", "2", "--device", "cpu", "--threads", "1",
                         "--out", str(tmp_path / "pictures"), "--json", str(report_path)])
    assert code == 0
    numbers = json.loads(report_path.read_text())["methods"]["dragdiffusion"]
    for key in ("mean_distance_px", "moved_fraction", "psnr_outside_db", "success_fraction", "seconds_per_case"):
        assert key in numbers
    assert numbers["cases"] == 2
    assert {name: g["cases"] for name, g in numbers["groups"].items()} == {"unmasked": 1, "masked": 1, "move": 2}
    # measured with the ground truth, not the method's tracker: 0.16 since the RecLoRA trains on draws of
    # the toy VAE's wide posterior as the authors' code does (0.42 on its mean; issue 16, README Methods)
    assert numbers["moved_fraction"] > 0.1, numbers
    assert numbers["mean_distance_px"] < numbers["mean_initial_distance_px"]
    for case in numbers["per_case"]:
        assert len(case["tracker_final_handles"]) == case["points"] and case["tracker_distance_px"] >= 0
        for suffix in ("before", "after", "trajectory"):
            assert (tmp_path / "pictures" / "dragdiffusion" / f"{case['case']}-{suffix}.png").is_file()
