"""The drag methods, by name. Each module defines SPEC (its parameter schema) and drag(ctx, params).

The registry ``METHODS`` is built on first use: importing the schema types (``methods.base``) must
not load torch, so the daemon can listen before the engine is ready.
"""
from __future__ import annotations

from functools import cache
from types import ModuleType

from ..engine.api import EditError


@cache
def _registry() -> dict[str, ModuleType]:
    from . import dragdiffusion, draglora, gooddrag, stabledrag

    return {m.SPEC.name: m for m in (dragdiffusion, gooddrag, stabledrag, draglora)}


def __getattr__(name: str):
    if name == "METHODS":
        return _registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_method(name: str) -> ModuleType:
    """The method module for a name; a clear error for an unknown one."""
    methods = _registry()
    try:
        return methods[name]
    except KeyError:
        raise EditError("unknown_method", f"unknown method '{name}'", f"choose one of: {', '.join(methods)}") from None
