"""sentence-transformers Dense modules: a linear layer and an activation, applied in order."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import torch

# Activations are named by import path in the module config; only torch.nn ones are
# accepted so a config file cannot import arbitrary code.
ALLOWED_PREFIXES = ("torch.nn.",)


def _activation(name: str | None) -> torch.nn.Module:
    if not name:  # sentence-transformers' default when the config names none
        return torch.nn.Tanh()
    if not name.startswith(ALLOWED_PREFIXES):
        raise ValueError(f"Dense activation `{name}` is not a torch.nn module")
    module_name, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)()


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    safetensors_file = folder / "model.safetensors"
    if safetensors_file.is_file():
        from safetensors.torch import load_file

        return load_file(str(safetensors_file))
    return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)


def load_dense_stack(dirs: list[Path], device: torch.device, hidden: int) -> tuple[torch.nn.Module | None, int]:
    """The folder's Dense modules in order on `device` (None without any), and the size of
    what comes out: the last one's out_features, else the network's hidden size."""
    if not dirs:
        return None, hidden
    stack = torch.nn.Sequential(*(load_dense(d) for d in dirs)).to(device).eval()
    return stack, int(stack[-1][0].out_features)


def load_dense(folder: Path) -> torch.nn.Module:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    linear = torch.nn.Linear(
        config["in_features"], config["out_features"], bias=config.get("bias", True)
    )
    state = {k.removeprefix("linear."): v for k, v in _weights(folder).items()}
    linear.load_state_dict(state)
    activation = _activation(
        config.get("activation_function") or config.get("activation_function_name")
    )
    return torch.nn.Sequential(linear, activation).eval()
