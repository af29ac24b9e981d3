"""The drag methods, by name. Each module defines SPEC (its parameter schema) and drag(ctx, params)."""
from __future__ import annotations

from types import ModuleType

from ..engine.api import EditError
from . import dragdiffusion, draglora, gooddrag, stabledrag

METHODS: dict[str, ModuleType] = {m.SPEC.name: m for m in (dragdiffusion, gooddrag, stabledrag, draglora)}


def get_method(name: str) -> ModuleType:
    """The method module for a name; a clear error for an unknown one."""
    try:
        return METHODS[name]
    except KeyError:
        raise EditError("unknown_method", f"unknown method '{name}'", f"choose one of: {', '.join(METHODS)}") from None
