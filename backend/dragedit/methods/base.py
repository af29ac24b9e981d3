"""The parameter schema every method publishes (the plug-ins build their UI from it)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..engine.api import EditError


@dataclass(frozen=True)
class Param:
    """One user-settable parameter: its type, published default, range and a sentence."""

    name: str
    type: str  # "int" | "float" | "bool" | "str" | "choice"
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    advanced: bool = True

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "default": self.default,
                               "description": self.description, "advanced": self.advanced}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.choices:
            out["choices"] = list(self.choices)
        return out

    def coerce(self, value: Any) -> Any:
        """Check and convert a user value; raises EditError with a clear sentence."""
        try:
            if self.type == "int":
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise TypeError
                value = int(value)
            elif self.type == "float":
                if isinstance(value, bool):
                    raise TypeError
                value = float(value)
            elif self.type == "bool":
                if not isinstance(value, bool):
                    raise TypeError
            elif self.type in ("str", "choice"):
                if not isinstance(value, str):
                    raise TypeError
        except (TypeError, ValueError):
            raise EditError("bad_param", f"parameter '{self.name}' must be of type {self.type}, got {value!r}")
        if self.min is not None and value < self.min or self.max is not None and value > self.max:
            raise EditError("bad_param", f"parameter '{self.name}' = {value} is outside [{self.min}, {self.max}]",
                            f"the default is {self.default}")
        if self.choices and value not in self.choices:
            raise EditError("bad_param", f"parameter '{self.name}' must be one of {', '.join(self.choices)}")
        return value


@dataclass(frozen=True)
class MethodSpec:
    """A method's name, title, description and parameters with their published defaults."""

    name: str
    title: str
    description: str
    params: tuple[Param, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "description": self.description,
                "params": [p.as_dict() for p in self.params]}

    def resolve(self, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults overridden by the given values; unknown names are an error."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise EditError("bad_param", f"unknown parameter(s) for {self.name}: {', '.join(unknown)}",
                            f"known parameters: {', '.join(sorted(known))}")
        return {name: (p.coerce(given[name]) if name in given else p.default) for name, p in known.items()}
