"""Which models a job may ask for, so a remote client cannot make the daemon read any file.

A job that names no model uses the daemon's model. A daemon that serves only this machine
accepts any model (its user can read the files anyway) unless a list is configured. A daemon
that serves other machines accepts only its own model, the models listed with
``--allow-model`` (hub ids, diffusers folders or ``.safetensors`` files), and anything inside a
``--models-dir`` folder. Paths are compared after resolving links and ``..``, and every file and
folder inside a model taken from a ``--models-dir`` folder must resolve inside that folder too
(a ``unet`` link to elsewhere is refused).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..engine.api import EditError


@dataclass(frozen=True)
class ModelPolicy:
    default: str
    allowed: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    allow_any: bool = False

    @classmethod
    def for_daemon(cls, default: str, allowed: tuple[str, ...], folders: tuple[str, ...], local: bool) -> "ModelPolicy":
        """The policy of a daemon: open on a local endpoint with no list, closed otherwise."""
        return cls(default, allowed, folders, allow_any=local and not allowed and not folders)

    def check(self, model: str | None) -> str | None:
        """The model to load for a job (None: the daemon's model); EditError if not allowed."""
        if model is None or model == "" or model == self.default or self.allow_any:
            return model or None
        if model in self.allowed:
            return model
        if os.path.isabs(model) and "\0" not in model:
            real = os.path.realpath(model)
            allowed_paths = [os.path.realpath(a) for a in (*self.allowed, self.default) if os.path.isabs(a)]
            if real in allowed_paths:
                return real
            for folder in map(os.path.realpath, self.folders):
                if _inside(real, folder) and _stays_inside(real, folder):
                    return real
        choices = ", ".join((self.default, *self.allowed)) + "".join(f", anything in {f}" for f in self.folders)
        raise EditError("model_not_allowed", f"this daemon does not serve the model '{model[:200]}'",
                        f"choose one of: {choices} (the daemon's administrator can add models with "
                        "--allow-model or --models-dir)")


def _stays_inside(model: str, folder: str, max_entries: int = 10_000) -> bool:
    """Whether every file and folder under ``model`` (links resolved) is inside ``folder``."""
    seen = 0
    for top, dirs, files in os.walk(model):
        for name in (*dirs, *files):
            seen += 1
            if seen > max_entries or not _inside(os.path.realpath(os.path.join(top, name)), folder):
                return False
    return True


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([path, folder]) == folder and path != folder
    except ValueError:  # different drives on Windows
        return False
