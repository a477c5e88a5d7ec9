"""The transformers network as it is: eager torch, on any device torch has."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import torch

from tei_bento.backends.base import Feeds, input_names, to_device
from tei_bento.model.device import Placement

log = logging.getLogger(__name__)


def load_network(folder: Path, auto_class: str, placement: Placement) -> torch.nn.Module:
    import transformers

    loader = getattr(transformers, auto_class)
    kwargs = dict(dtype=placement.dtype)
    try:
        network = loader.from_pretrained(folder, attn_implementation=placement.attention, **kwargs)
    except (ValueError, ImportError) as exc:  # architecture without SDPA support
        log.warning("Falling back to eager attention: %s", exc)
        network = loader.from_pretrained(folder, attn_implementation="eager", **kwargs)
    return network.to(placement.device).eval()


class TorchBackend:
    name = "torch"
    accuracy = None

    def __init__(self, network: torch.nn.Module, output: str, device: torch.device) -> None:
        self.network = network
        self.output = output
        self.device = device
        takes_types = "token_type_ids" in inspect.signature(network.forward).parameters
        self.input_names = input_names(takes_types)

    @classmethod
    def load(cls, folder: Path, auto_class: str, output: str, placement: Placement) -> "TorchBackend":
        return cls(load_network(folder, auto_class, placement), output, placement.device)

    def tensors(self, feeds: Feeds) -> dict[str, torch.Tensor]:
        """The inputs on the device in one copy; on an accelerator the attention mask is left
        in `feeds` as its device tensor, so the task's head pools with it instead of copying it
        again (on the CPU the tensors share the arrays' memory: nothing to save)."""
        placed = to_device(feeds, self.input_names, self.device)
        if self.device.type != "cpu":
            feeds["attention_mask"] = placed["attention_mask"]  # type: ignore[assignment]
        return placed

    def forward(self, feeds: Feeds) -> torch.Tensor:
        return getattr(self.network(**self.tensors(feeds)), self.output)
