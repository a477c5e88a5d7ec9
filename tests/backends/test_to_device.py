"""One host-to-device copy per batch (backends.base.to_device), checked without a GPU: on the
CPU the tensors are the arrays themselves; on another device (torch's `meta` device stands in
for CUDA here) every input is a view of one copied buffer."""

from __future__ import annotations

import numpy as np
import torch

from tei_bento.backends.base import to_device

NAMES = ["input_ids", "attention_mask", "token_type_ids"]


def feeds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.integers(0, 100, size=(3, 7), dtype=np.int64) for name in NAMES}


def test_on_the_cpu_nothing_is_copied():
    arrays = feeds()
    placed = to_device(arrays, NAMES, torch.device("cpu"))
    for name in NAMES:
        assert np.shares_memory(placed[name].numpy(), arrays[name])


def test_on_an_accelerator_every_input_is_a_view_of_one_copy(monkeypatch):
    copies = []
    original = torch.Tensor.to

    def counting_to(self, *args, **kwargs):
        copies.append((args, kwargs))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", counting_to)
    placed = to_device(feeds(), NAMES, torch.device("meta"))
    assert len(copies) == 1 and copies[0][1] == {"non_blocking": True}
    assert {placed[name].device.type for name in NAMES} == {"meta"}
    assert {placed[name].shape for name in NAMES} == {torch.Size([3, 7])}
    bases = {id(placed[name]._base) for name in NAMES}
    assert len(bases) == 1 and placed["input_ids"]._base is not None

