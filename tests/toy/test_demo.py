"""`dragedit demo`: the in-process daemon, the toy model and the pictures it promises."""
from __future__ import annotations

import numpy as np
from PIL import Image

from dragedit.toy import demo


def test_demo_writes_before_after_and_an_animated_gif(tmp_path, capsys, dragedit_home):
    out = tmp_path / "demo"
    assert demo.main(["--method", "dragdiffusion", "--out", str(out), "--device", "cpu", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    for name in ("before.png", "after-dragdiffusion.png", "drag-dragdiffusion.gif"):
        assert (out / name).is_file() and str((out / name).resolve()) in printed
    page = out / "index.html"
    assert printed.rstrip().endswith(str(page.resolve()))  # the last thing it says: where to look
    assert 'src="drag-dragdiffusion.gif"' in page.read_text() and "moved" in page.read_text()
    lines = printed.replace("\r", "\n").splitlines()
    assert not [line for line in lines if line.strip() in demo.PHASES]  # no bare phase lines
    assert any("steps" in line and "left" in line and "dragdiffusion" in line for line in lines)
    noise = captured.out + captured.err
    for message in ("peft_config", "float32", "Loading weights"):
        assert message not in noise, message
    before = np.asarray(Image.open(out / "before.png").convert("RGB"))
    after = np.asarray(Image.open(out / "after-dragdiffusion.png").convert("RGB"))
    assert before.shape == after.shape and not np.array_equal(before, after)
    gif = Image.open(out / "drag-dragdiffusion.gif")
    assert gif.n_frames >= 5  # the input, the drag as it runs, the result


def test_demo_names_the_methods_when_given_an_unknown_one(tmp_path, capsys, dragedit_home):
    assert demo.main(["--method", "nope", "--out", str(tmp_path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'nope'" in err and "dragdiffusion" in err


def test_the_progress_line_counts_every_phase_and_takes_the_reported_totals():
    spec = {"params": [{"name": "lora_steps", "default": 80}, {"name": "drag_steps", "default": 80},
                       {"name": "inversion_strength", "default": 0.7}]}
    assert demo.expected_steps(spec) == {"lora": 80, "inversion": 35, "drag": 80, "denoise": 35}
    progress = demo.MethodProgress("dragdiffusion", demo.expected_steps(spec), enabled=False)
    progress.update("load", 1, 1)  # not a phase with steps: ignored
    assert (progress.bar.n, progress.bar.total) == (0, 230)
    progress.update("lora", 40, 80)
    assert progress.bar.n == 40
    progress.update("drag", 10, 60)  # the drag started: LoRA and inversion are done, and it makes 60 steps
    assert (progress.bar.n, progress.bar.total) == (80 + 35 + 10, 80 + 35 + 60 + 35)
    progress.update("inversion", 1, 1, cached=True)
    assert progress.totals["inversion"] == 1 and progress.done["inversion"] == 1
    progress.finish("moved 50% of the way")
    assert progress.bar.n == progress.bar.total
