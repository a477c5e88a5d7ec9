"""The network as a plain function of positional tensors, for the graph capturers.

ONNX export and TorchScript tracing both record one call of a module that takes tensors
positionally and returns one tensor, while transformers models take keyword arguments and
return a ModelOutput. This wrapper is that call; `output_name` says which field of the
ModelOutput the engine reads for a task.
"""

from __future__ import annotations

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
