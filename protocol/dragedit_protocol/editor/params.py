"""The parameter-form model: method schemas from the daemon's ``welcome`` and the artist's values.

The daemon publishes each method as {name, title, description, params: [{name, type, default,
description, advanced, min?, max?, choices?}]}. ``ParamStore`` keeps the values the artist
changed (per method) over those published defaults, checks them against the schema, and
round-trips through JSON for the editor's settings and the document.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError

PARAM_TYPES = ("int", "float", "bool", "str", "choice")
MAX_SEED = 2**63 - 1
# Words an artist reads for the methods' parameters (the technical name goes in the tooltip);
# names not listed here are shown as 'Their name in words'.
ARTIST_LABELS = {
    "drag_steps": "Drag steps", "operations": "Drag steps", "inversion_strength": "Strength",
    "lora_steps": "Fine-tuning steps", "lora_rank": "Fine-tuning rank", "lora_lr": "Fine-tuning rate",
    "lora_batch": "Fine-tuning batch", "lr": "Drag rate", "r1": "Grab radius", "r2": "Search radius",
    "mask_weight": "Keep outside", "beta": "Largest stride", "patience": "Patience",
    "operations_per_step": "Drags per denoise", "gradient_steps": "Pushes per drag",
    "tracking_region": "Tracking region", "angle_deg": "Tracking angle", "dds_weight": "Faithfulness",
    "k_ini": "Warm-up steps", "max_ilfa_steps": "Most adaptation steps", "tracker_iterations": "Tracker training",
    "tracker_sigma": "Tracker width", "template_weight": "Template weight", "confidence_tau": "Confidence threshold",
}
# Parameters the editors set through their own controls: the selection's "Soft edge" replaces the
# engine's ``feather`` (one soft-edge setting, not two).
EDITOR_OWNED = ("feather",)


@dataclass(frozen=True)
class ParamSpec:
    """One published parameter."""

    name: str
    type: str
    default: Any
    description: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    advanced: bool = True

    @classmethod
    def from_dict(cls, d: dict) -> ParamSpec:
        if d.get("type") not in PARAM_TYPES:
            raise ValueError(f"parameter {d.get('name')!r} has unknown type {d.get('type')!r}")
        return cls(name=str(d["name"]), type=d["type"], default=d.get("default"),
                   description=str(d.get("description", "")), min=d.get("min"), max=d.get("max"),
                   choices=tuple(d.get("choices") or ()), advanced=bool(d.get("advanced", True)))

    @property
    def label(self) -> str:
        """The words an artist reads: 'inversion_strength' -> 'Strength', 'learning_rate' -> 'Learning rate'."""
        if self.name in ARTIST_LABELS:
            return ARTIST_LABELS[self.name]
        text = self.name.replace("_", " ")
        return text[:1].upper() + text[1:]

    @property
    def decimals(self) -> int:
        """Decimals a float field shows: enough for the default (0.7 -> 2, 0.01 -> 3, 5e-4 -> 5)."""
        shown = [abs(float(v)) for v in (self.default, self.min) if v not in (None, 0)]
        smallest = shown[0] if shown else 1.0
        decimals = 2
        while decimals < 6 and smallest < 10 ** (1 - decimals):
            decimals += 1
        return decimals

    def coerce(self, value: Any) -> Any:
        """The value converted to this parameter's type; UserError when it does not fit."""
        try:
            value = self._convert(value)
        except (TypeError, ValueError):
            raise UserError(f"{self.label} must be {self._kind()}, not {value!r}", f"the default is {self.default!r}")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise UserError(f"{self.label} must be between {self.min} and {self.max}, not {value}",
                            f"the default is {self.default!r}")
        if self.choices and value not in self.choices:
            raise UserError(f"{self.label} must be one of {', '.join(self.choices)}, not {value!r}",
                            f"the default is {self.default!r}")
        return value

    def _convert(self, value: Any) -> Any:
        if self.type == "bool":
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if not isinstance(value, bool):
                raise TypeError
            return value
        if self.type in ("str", "choice"):
            if not isinstance(value, str):
                raise TypeError
            return value
        if isinstance(value, bool):
            raise TypeError
        number = float(value) if isinstance(value, str) else value
        if not isinstance(number, (int, float)) or not math.isfinite(number):
            raise ValueError
        if self.type == "int":
            if number != int(number):
                raise ValueError
            return int(number)
        return float(number)

    def _kind(self) -> str:
        return {"int": "a whole number", "float": "a number", "bool": "true or false",
                "str": "text", "choice": "one of the listed choices"}[self.type]


@dataclass(frozen=True)
class MethodSpec:
    """One drag method and its parameters as the daemon publishes them."""

    name: str
    title: str
    description: str = ""
    params: tuple[ParamSpec, ...] = ()

    @classmethod
    def from_dict(cls, d: dict) -> MethodSpec:
        return cls(name=str(d["name"]), title=str(d.get("title") or d["name"]),
                   description=str(d.get("description", "")),
                   params=tuple(ParamSpec.from_dict(p) for p in d.get("params", ())))

    @property
    def form_params(self) -> tuple[ParamSpec, ...]:
        """The parameters an editor's form shows (not those its own controls set)."""
        return tuple(p for p in self.params if p.name not in EDITOR_OWNED)

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


def result_layer_name(method: MethodSpec | None, seed: int | None, overrides: dict[str, Any] | None = None) -> str:
    """The result layer's name, in words: 'GoodDrag drag (seed 42; Drag steps 20, Strength 0.5)'.

    The seed reproduces the drag; up to three changed settings say how it differed from the defaults.
    """
    title = method.title if method else "DragEdit"
    labels = {p.name: p.label for p in method.params} if method else {}
    details = [f"seed {seed}"] if seed is not None else []
    changed = ", ".join(f"{labels.get(k, k)} {v:g}" if isinstance(v, float) else f"{labels.get(k, k)} {v}"
                        for k, v in sorted((overrides or {}).items())[:3])
    inside = "; ".join(part for part in (", ".join(details), changed) if part)
    return f"{title} drag ({inside})" if inside else f"{title} drag"


def methods_from_welcome(welcome: dict | None) -> list[MethodSpec]:
    """The methods a daemon's ``welcome`` publishes (empty before the welcome arrives)."""
    if not welcome:
        return []
    raw = welcome.get("methods")
    if raw is None and isinstance(welcome.get("engine"), dict):
        raw = welcome["engine"].get("methods")
    return [MethodSpec.from_dict(m) for m in raw or ()]


@dataclass
class ParamStore:
    """The artist's chosen method, parameter values per method, seed (None = random) and prompt."""

    method: str = ""
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int | None = None
    prompt: str = ""

    def value(self, method: MethodSpec, name: str) -> Any:
        """The stored value if it still fits the schema, else the published default."""
        spec = method.param(name)
        stored = self.values.get(method.name, {})
        if name in stored:
            try:
                return spec.coerce(stored[name])
            except UserError:
                pass
        return spec.default

    def set(self, method: MethodSpec, name: str, value: Any) -> Any:
        """Check and store a value; returns it converted. Raises UserError when it does not fit."""
        value = method.param(name).coerce(value)
        self.values.setdefault(method.name, {})[name] = value
        return value

    def reset(self, method: MethodSpec) -> None:
        """Back to the published defaults for this method."""
        self.values.pop(method.name, None)

    def overrides(self, method: MethodSpec) -> dict[str, Any]:
        """The values that differ from the published defaults: what a submit sends as params."""
        out = {}
        for spec in method.params:
            value = self.value(method, spec.name)
            if value != spec.default:
                out[spec.name] = value
        return out

    def set_seed(self, value: Any) -> int | None:
        """Blank or None = a random seed each drag; else a whole number 0 .. 2**63 - 1."""
        if value is None or (isinstance(value, str) and not value.strip()):
            self.seed = None
            return None
        try:
            seed = int(value)
            if isinstance(value, bool) or seed != float(value) or not 0 <= seed <= MAX_SEED:
                raise ValueError
        except (TypeError, ValueError):
            raise UserError(f"The seed must be a whole number from 0 to {MAX_SEED}, not {value!r}",
                            "leave it blank for a random seed")
        self.seed = seed
        return seed

    def to_json(self) -> str:
        return json.dumps({"method": self.method, "values": self.values, "seed": self.seed, "prompt": self.prompt},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes | None) -> ParamStore:
        """Parse saved settings; anything unreadable gives the defaults (stale values are dropped on use)."""
        try:
            d = json.loads(text) if text else {}
        except ValueError:
            d = {}
        if not isinstance(d, dict):
            d = {}
        values = d.get("values") if isinstance(d.get("values"), dict) else {}
        store = cls(method=d.get("method") if isinstance(d.get("method"), str) else "",
                    values={k: dict(v) for k, v in values.items() if isinstance(v, dict)},
                    prompt=d.get("prompt") if isinstance(d.get("prompt"), str) else "")
        try:
            store.set_seed(d.get("seed"))
        except UserError:
            store.seed = None
        return store
