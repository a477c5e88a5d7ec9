"""The network as a plain function of positional tensors, for the graph capturers.

ONNX export and TorchScript tracing both record one call of a module that takes tensors
positionally and returns one tensor, while transformers models take keyword arguments and
return a ModelOutput. This wrapper is that call; `output_name` says which field of the
ModelOutput the engine reads for a task. A captured graph serves only after `reproduces`
has seen it give the eager network's outputs on batch shapes it was not captured on.
"""

from __future__ import annotations

from typing import Any

import torch

from tei_bento.model.tasks import Task

BERT_FAMILY = {"bert", "roberta", "xlm-roberta", "camembert", "distilbert", "mpnet", "electra"}
"""Encoders whose forward pass branches on nothing but the attention mask: ORT's BERT
optimizer fuses them, and a trace of them holds for every batch shape."""


def output_name(task: Task) -> str:
    return "last_hidden_state" if task is Task.EMBEDDING else "logits"


def input_names(with_types: bool) -> list[str]:
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])


class PositionalNetwork(torch.nn.Module):
    def __init__(self, network: torch.nn.Module, output: str, with_types: bool) -> None:
        super().__init__()
        self.network = network
        self.output = output
        self.with_types = with_types

    def forward(self, input_ids, attention_mask, token_type_ids=None):  # type: ignore[override]
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.with_types:
            kwargs["token_type_ids"] = token_type_ids
        return getattr(self.network(**kwargs), self.output)


CHECK_LENGTHS = ((23, 11, 4), (14,))
"""Batches a captured graph must reproduce eager on: padded and not, unseen lengths."""


def example_batch(
    lengths: tuple[int, ...], vocab_size: int, pad_token_id: int, with_types: bool
) -> tuple[torch.Tensor, ...]:
    """Right-padded rows of fixed pseudo-random ids, as the engine builds batches."""
    generator = torch.Generator().manual_seed(sum(lengths))
    longest = max(lengths)
    ids = torch.randint(min(1000, vocab_size - 1), vocab_size, (len(lengths), longest), generator=generator)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    ids = ids.masked_fill(mask == 0, pad_token_id)
    return (ids, mask, torch.zeros_like(ids)) if with_types else (ids, mask)


def same_outputs(got: torch.Tensor, want: torch.Tensor, mask: torch.Tensor) -> bool:
    """Equal up to float32 reordering; per-token outputs are compared where the mask is 1."""
    if got.shape != want.shape:
        return False
    if got.dim() >= 3:  # per-token outputs: padding positions are never read
        got, want = got[mask.bool()], want[mask.bool()]
    tolerance = 1e-4 if want.dtype == torch.float32 else 1e-2
    scale = float(want.abs().max()) if want.numel() else 1.0
    return bool(torch.allclose(got.float(), want.float(), rtol=tolerance, atol=tolerance * max(scale, 1.0)))


def reproduces(
    candidate: Any, reference: Any, task: Task, config: Any, pad_token_id: int, with_types: bool
) -> bool:
    """Whether `candidate` answers like `reference` (both called like a transformers model
    with keyword tensors) on every batch in CHECK_LENGTHS."""
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    name = output_name(task)
    for lengths in CHECK_LENGTHS:
        feeds = dict(zip(input_names(with_types), example_batch(lengths, vocab, pad_token_id, with_types)))
        with torch.inference_mode():
            got = getattr(candidate(**feeds), name)
            want = getattr(reference(**feeds), name)
        if not same_outputs(got, want, feeds["attention_mask"]):
            return False
    return True
