"""The protocol distribution ships every sub-package the plug-ins import (a plain pip install too)."""
from __future__ import annotations

import tomllib
from pathlib import Path

PROTOCOL = Path(__file__).resolve().parents[2] / "protocol"


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((PROTOCOL / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(PROTOCOL).parts) for init in PROTOCOL.glob("dragedit_protocol/**/__init__.py")}
    assert "dragedit_protocol.editor" in found
    assert found == listed
