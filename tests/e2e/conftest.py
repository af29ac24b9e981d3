"""Fixtures for the real-editor tests (marker `editor`; run: .venv/bin/python -m pytest -m editor tests/e2e).

An editor that is missing and cannot be installed fails the test when CI=true, and skips it
elsewhere (e.g. a developer without root).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import editors  # noqa: E402  (tests/e2e is not a package: editor scripts live beside it)


def _unavailable(err: editors.EditorUnavailable) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"editor missing in CI: {err}")
    pytest.skip(f"editor unavailable here: {err}")


@pytest.fixture(scope="session")
def krita() -> None:
    """Krita and Xvfb are installed."""
    try:
        editors.ensure_krita()
    except editors.EditorUnavailable as err:
        _unavailable(err)


@pytest.fixture(scope="session")
def trixie_krita() -> Path:
    """The trixie chroot (GIMP's) with Krita 5.2.9 added; returns its root."""
    try:
        return editors.ensure_trixie_krita()
    except editors.EditorUnavailable as err:
        _unavailable(err)


@pytest.fixture(scope="session")
def gimp_root() -> Path:
    """The GIMP 3 chroot's root."""
    try:
        return editors.ensure_gimp()
    except editors.EditorUnavailable as err:
        _unavailable(err)


@pytest.fixture(scope="session")
def installed_plugins(krita, gimp_root, tmp_path_factory) -> dict:
    """Both plug-ins as install.py installs them (see editors.install_plugins for the keys)."""
    return editors.install_plugins(tmp_path_factory.mktemp("installed"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny randomly initialised SD-1.5-layout diffusers folder (the engine's test model)."""
    from dragedit.engine.models import build_random_model

    return build_random_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="session")
def daemon(tiny_model, tmp_path_factory):
    """A real `dragedit serve` on a free loopback port with the tiny model; yields its endpoint.

    Shared by the session (it takes ~20 s to start); its log is <DRAGEDIT_HOME>/daemon.out.
    """
    home = tmp_path_factory.mktemp("daemon-home")
    proc, endpoint = editors.start_daemon(tiny_model, home)
    yield endpoint
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
