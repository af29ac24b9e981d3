"""Shared fixtures: a tiny random SD-1.5-layout model saved to disk once per test session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tiny models are latency-bound: one thread avoids oversubscribing a small CI machine where the
# daemon, the test process and the editors run at once. Subprocesses inherit these.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """Path of a tiny randomly initialised diffusers model (safetensors), built through the real builder."""
    import torch

    from dragedit.engine.models import build_random_model

    torch.set_num_threads(1)
    return build_random_model(tmp_path_factory.mktemp("models") / "tiny", layout="tiny", seed=0)


@pytest.fixture()
def dragedit_home(tmp_path, monkeypatch) -> Path:
    """An empty user data folder for the daemon and the caches."""
    home = tmp_path / "dragedit-home"
    monkeypatch.setenv("DRAGEDIT_HOME", str(home))
    return home
