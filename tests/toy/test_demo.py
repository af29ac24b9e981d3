"""`dragedit demo`: the in-process daemon, the toy model and the pictures it promises."""
from __future__ import annotations

import numpy as np
from PIL import Image

from dragedit.toy import demo


def test_demo_writes_before_after_and_an_animated_gif(tmp_path, capsys, dragedit_home):
    out = tmp_path / "demo"
    assert demo.main(["--method", "dragdiffusion", "--out", str(out), "--device", "cpu", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    for name in ("before.png", "after-dragdiffusion.png", "drag-dragdiffusion.gif"):
        assert (out / name).is_file() and str((out / name).resolve()) in printed
    before = np.asarray(Image.open(out / "before.png").convert("RGB"))
    after = np.asarray(Image.open(out / "after-dragdiffusion.png").convert("RGB"))
    assert before.shape == after.shape and not np.array_equal(before, after)
    gif = Image.open(out / "drag-dragdiffusion.gif")
    assert gif.n_frames >= 5  # the input, the drag as it runs, the result


def test_demo_names_the_methods_when_given_an_unknown_one(tmp_path, capsys, dragedit_home):
    assert demo.main(["--method", "nope", "--out", str(tmp_path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'nope'" in err and "dragdiffusion" in err
