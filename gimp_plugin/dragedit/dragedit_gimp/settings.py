"""Reading, checking and remembering the procedure's arguments (declared in registration.py)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gi.repository import Gimp

from dragedit_protocol.editor.errors import UserError
from dragedit_protocol.editor.params import MethodSpec, ParamStore

from .registration import RANDOM_SEED, SOFT_EDGE_PX

PARAMS_HINT = 'write them as a JSON object, e.g. {"drag_steps": 40, "lr": 0.01}, or "{}" for the defaults'


@dataclass
class DragArgs:
    """One drag's settings as the procedure receives them."""

    method: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    path_name: str = ""
    seed: int | None = None
    prompt: str = ""
    soft_edge: int = SOFT_EDGE_PX  # px
    model: str = ""  # '' the daemon's own, 'toy' the demo model, else a file, folder or hub id


def parse_params(text: str) -> dict[str, Any]:
    """The params argument as a dict; UserError with an example when it is not a JSON object."""
    try:
        value = json.loads(text) if text and text.strip() else {}
    except ValueError as exc:
        raise UserError(f"The parameters are not valid JSON ({exc})", PARAMS_HINT)
    if not isinstance(value, dict):
        raise UserError("The parameters must be a JSON object of name: value", PARAMS_HINT)
    for name, item in value.items():
        if not isinstance(item, (bool, int, float, str)):
            raise UserError(f"Parameter '{name}' must be a number, true/false or text", PARAMS_HINT)
    return value


def read_args(config: Gimp.ProcedureConfig) -> DragArgs:
    """The arguments from a procedure config; UserError for unreadable parameters."""
    seed = config.get_property("seed")
    return DragArgs(
        method=(config.get_property("method") or "").strip(),
        params=parse_params(config.get_property("params") or ""),
        path_name=(config.get_property("path-name") or "").strip(),
        seed=None if seed is None or seed < 0 else int(seed),
        prompt=config.get_property("prompt") or "",
        soft_edge=int(config.get_property("soft-edge")),
        model=(config.get_property("model") or "").strip(),
    )


def write_args(config: Gimp.ProcedureConfig, args: DragArgs, store: ParamStore) -> None:
    """Store the values of a drag in the config (GIMP saves them as the last used values)."""
    config.set_property("method", args.method)
    config.set_property("params", json.dumps(args.params, sort_keys=True))
    config.set_property("path-name", args.path_name)
    config.set_property("seed", RANDOM_SEED if args.seed is None else args.seed)
    config.set_property("prompt", args.prompt)
    config.set_property("soft-edge", args.soft_edge)
    config.set_property("model", args.model)
    config.set_property("settings", store.to_json())


def read_store(config: Gimp.ProcedureConfig) -> ParamStore:
    """The dialog's remembered values: the aux settings, with the arguments' values on top."""
    store = ParamStore.from_json(config.get_property("settings") or "")
    try:
        args = read_args(config)
    except UserError:
        return store
    if args.method:
        store.method = args.method
        store.values[args.method] = {**store.values.get(args.method, {}), **args.params}
    store.seed, store.prompt = args.seed, args.prompt
    return store


def choose_method(methods: list[MethodSpec], name: str) -> MethodSpec:
    """The method called ``name`` (empty: the first); UserError listing the daemon's methods."""
    if not methods:
        raise UserError("The daemon publishes no drag methods", "check the daemon's log, then restart it")
    if not name:
        return methods[0]
    for method in methods:
        if method.name == name:
            return method
    known = ", ".join(m.name for m in methods)
    raise UserError(f"The daemon has no drag method '{name}'", f"use one of: {known}")


def resolve_params(method: MethodSpec, given: dict[str, Any]) -> dict[str, Any]:
    """The given values checked against the method's schema; UserError naming the first bad one."""
    known = {p.name: p for p in method.params}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise UserError(f"{method.title} has no parameter {', '.join(repr(u) for u in unknown)}",
                        f"its parameters are: {', '.join(known) or 'none'}")
    return {name: known[name].coerce(value) for name, value in given.items()}
