"""The whole state of a toy training run in one safetensors file, so a run can stop and continue later.

It holds the weights of every module trained so far, the current optimiser's state, the random
generators' states, the stage and step reached and a JSON description (the recipe the run was
started with), so continuing gives the same weights as never stopping. Safetensors only: a state
file is never unpickled.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

STATE_FILE = "train-state.safetensors"


def _cpu(value: torch.Tensor) -> torch.Tensor:
    return value.detach().to("cpu").contiguous().clone()


def save_state(path: Path, meta: dict[str, Any], modules: dict[str, torch.nn.Module],
               optimizer: torch.optim.Optimizer, generators: dict[str, torch.Generator]) -> None:
    """Write (atomically) the modules' weights, the optimiser, the generators and `meta` to `path`."""
    tensors = {f"module.{name}.{key}": _cpu(value)
               for name, module in modules.items() for key, value in module.state_dict().items()}
    optimizer_state = optimizer.state_dict()
    scalars = {}
    for index, entries in optimizer_state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = _cpu(value)
            else:
                scalars[f"{index}.{key}"] = value
    tensors |= {f"generator.{name}": generator.get_state() for name, generator in generators.items()}
    meta = meta | {"optimizer_param_groups": optimizer_state["param_groups"], "optimizer_scalars": scalars}
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata={"state": json.dumps(meta)})
    os.replace(partial, path)


class TrainingState:
    """A state file read back: `meta` and the restore_* methods that put the saved values in place."""

    def __init__(self, path: Path):
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            self.meta: dict[str, Any] = json.loads(handle.metadata()["state"])
        self.tensors = load_file(str(path))

    @property
    def stage(self) -> str:
        return self.meta["stage"]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    def restore_module(self, name: str, module: torch.nn.Module) -> None:
        prefix = f"module.{name}."
        weights = {key[len(prefix):]: value for key, value in self.tensors.items() if key.startswith(prefix)}
        module.load_state_dict(weights, strict=True)

    def restore_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        state: dict[int, dict[str, Any]] = {}
        for key, value in self.tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        for key, value in self.meta["optimizer_scalars"].items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": self.meta["optimizer_param_groups"]})

    def restore_generator(self, name: str, generator: torch.Generator) -> None:
        generator.set_state(self.tensors[f"generator.{name}"])
