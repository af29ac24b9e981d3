"""The short variant of `dragedit bench quality`: a few cases, one method, on the shipped toy model."""
from __future__ import annotations

import json

from dragedit.bench import quality
from dragedit.toy.params import toy_params


def test_toy_params_scale_only_the_spatial_defaults():
    spec = {"params": [
        {"name": "r1", "type": "int", "default": 4}, {"name": "r2", "type": "int", "default": 12},
        {"name": "beta", "type": "float", "default": 4.0}, {"name": "lr", "type": "float", "default": 0.02},
    ]}
    assert toy_params(spec) == {"r1": 1, "r2": 3, "beta": 1.0}
    dragdiffusion = {"params": [{"name": "r1", "type": "int", "default": 1}, {"name": "r2", "type": "int", "default": 3}]}
    assert toy_params(dragdiffusion) == {"r1": 1, "r2": 3}


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
    assert numbers["moved_fraction"] > 0.25, numbers  # measured with the ground truth, not the method's tracker
    assert numbers["mean_distance_px"] < numbers["mean_initial_distance_px"]
    for case in numbers["per_case"]:
        for suffix in ("before", "after", "trajectory"):
            assert (tmp_path / "pictures" / "dragdiffusion" / f"{case['case']}-{suffix}.png").is_file()
