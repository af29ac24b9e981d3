"""The GIMP plug-in's modules run here against fake_gimp (no GIMP needed)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PLUGIN_DIR = HERE.parents[1] / "gimp_plugin" / "dragedit"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(PLUGIN_DIR))

import fake_gimp  # noqa: E402

fake_gimp.install()


@pytest.fixture(autouse=True)
def fresh_fakes():
    fake_gimp.reset()
    yield
    fake_gimp.reset()
