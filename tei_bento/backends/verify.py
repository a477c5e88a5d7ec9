"""The network as a plain function of positional tensors, and the check a captured graph
must pass before it serves.

ONNX export and TorchScript tracing both record one call of a module that takes tensors
positionally and returns one tensor, while transformers models take keyword arguments and
return a ModelOutput. `PositionalNetwork` is that call. A captured graph serves only after
`reproduces` has seen it give the eager network's outputs on batch shapes it was not
captured on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tei_bento.backends.base import Backend, Feeds

BERT_FAMILY = {"bert", "roberta", "xlm-roberta", "camembert", "distilbert", "mpnet", "electra"}
"""Encoders whose forward pass branches on nothing but the attention mask: ORT's BERT
optimizer fuses them, and a trace of them holds for every batch shape."""


class PositionalNetwork(torch.nn.Module):
    def __init__(self, network: torch.nn.Module, output: str, names: list[str]) -> None:
        super().__init__()
        self.network = network
        self.output = output
        self.names = names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return getattr(self.network(**dict(zip(self.names, tensors))), self.output)


CHECK_LENGTHS = ((23, 11, 4), (14,))
"""Batches a captured graph must reproduce eager on: padded and not, unseen lengths."""


def example_feeds(lengths: tuple[int, ...], vocab_size: int, pad_token_id: int, names: list[str]) -> Feeds:
    """Right-padded rows of fixed pseudo-random ids, as the runner builds batches."""
    generator = np.random.default_rng(sum(lengths))
    longest = max(lengths)
    ids = generator.integers(min(1000, vocab_size - 1), vocab_size, (len(lengths), longest))
    mask = np.zeros_like(ids)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    ids = np.where(mask == 0, pad_token_id, ids)
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {name: feeds[name] for name in names}


def same_outputs(got: torch.Tensor, want: torch.Tensor, mask: np.ndarray) -> bool:
    """Equal up to float32 reordering; per-token outputs are compared where the mask is 1."""
    got, want = got.cpu(), want.cpu()
    if got.shape != want.shape:
        return False
    if got.dim() >= 3:  # per-token outputs: padding positions are never read
        keep = torch.from_numpy(mask).bool()
        got, want = got[keep], want[keep]
    tolerance = 1e-4 if want.dtype == torch.float32 else 1e-2
    scale = float(want.abs().max()) if want.numel() else 1.0
    return bool(torch.allclose(got.float(), want.float(), rtol=tolerance, atol=tolerance * max(scale, 1.0)))


def reproduces(candidate: Backend, reference: Backend, config: Any, pad_token_id: int) -> bool:
    """Whether `candidate` answers like `reference` on every batch in CHECK_LENGTHS."""
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    for lengths in CHECK_LENGTHS:
        feeds = example_feeds(lengths, vocab, pad_token_id, reference.input_names)
        with torch.inference_mode():
            got = candidate.forward(feeds)
            want = reference.forward(feeds)
        if not same_outputs(got, want, feeds["attention_mask"]):
            return False
    return True
