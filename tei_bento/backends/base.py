"""The backend interface: padded token arrays in, the network's output tensor out.

A backend runs the network and nothing else: padding happens before it (the runner), the
task's head after it. Inputs are host numpy arrays named as transformers names them
(`input_ids`, `attention_mask`, `token_type_ids`), so a backend that runs elsewhere than
torch (ONNX Runtime) takes them as they are and one that runs on an accelerator makes the
single host-to-device copy itself. The output is the task's `network_output` field
(`last_hidden_state` or `logits`) as a torch tensor, on whatever device it was computed.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

Feeds = dict[str, np.ndarray]


class Backend(Protocol):
    name: str
    """What `/info.backend` reports: torch, torchscript, onnx, onnx-int8, ..."""
    device: torch.device
    """Where the output tensor lives (the head runs there)."""

    input_names: list[str]
    """The feeds it reads (`token_type_ids` only where the network takes them)."""
    accuracy: dict[str, float] | None
    """How close a lossy backend (int8) is to float32, measured when it was built."""

    def forward(self, feeds: Feeds) -> torch.Tensor: ...


def input_names(with_types: bool) -> list[str]:
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])


def to_device(feeds: Feeds, names: list[str], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch's arrays as tensors on `device`, in one host-to-device copy per batch.

    On an accelerator the arrays are stacked straight into one page-locked (pinned) buffer
    and copied with `non_blocking=True`, so the copy is one DMA the device queues behind
    the previous batch instead of one synchronous copy per input; the tensors returned are
    views of that one device buffer. On the CPU nothing is copied (`torch.from_numpy`
    shares the arrays' memory).
    """
    if device.type == "cpu":
        return {name: torch.from_numpy(feeds[name]) for name in names}
    first = feeds[names[0]]
    pinned = torch.empty((len(names), *first.shape), dtype=torch.int64, pin_memory=device.type == "cuda")
    np.stack([feeds[name] for name in names], out=pinned.numpy())
    on_device = pinned.to(device, non_blocking=True)
    return dict(zip(names, on_device.unbind(0), strict=True))

