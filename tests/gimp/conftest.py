"""The GIMP plug-in's modules run here against fake_gimp (no GIMP needed)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PLUGIN_DIR = HERE.parents[1] / "gimp_plugin" / "dragedit"
sys.path.insert(0, str(HERE))

import fake_gimp  # noqa: E402

fake_gimp.install()
# Import the plug-in's package without putting its folder on sys.path: the folder also holds GIMP's
# entry script dragedit.py, which would shadow the daemon's `dragedit` package for later tests.
_spec = importlib.util.spec_from_file_location("dragedit_gimp", PLUGIN_DIR / "dragedit_gimp" / "__init__.py",
                                               submodule_search_locations=[str(PLUGIN_DIR / "dragedit_gimp")])
sys.modules["dragedit_gimp"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sys.modules["dragedit_gimp"])


@pytest.fixture(autouse=True)
def fresh_fakes():
    fake_gimp.reset()
    yield
    fake_gimp.reset()
