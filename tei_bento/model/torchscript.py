"""Run BERT-family encoders on CPU as one traced TorchScript graph.

On a small input a transformers forward pass is mostly Python: a 17-token text through
all-MiniLM-L6-v2 dispatches about 700 aten ops, and on a 2-core cloud vCPU the Python
around them costs about as much as the matrix products (16 ms eager, 9-10 ms traced).
A traced, frozen graph runs the same aten kernels in the same order, so its numbers are
the eager ones, without the interpreter in between.

A trace records one path through the Python, so it is taken only for the encoders whose
forward pass branches on nothing but the attention mask (`BERT_FAMILY`), on a padded
example so the masked path is the one recorded, and it serves only after it has matched
the eager network on shapes it was not traced on. Anything else runs eager.
"""

from __future__ import annotations

import logging
import warnings
from types import SimpleNamespace
from typing import Any

import torch

from tei_bento.model.positional import (
    BERT_FAMILY,
    PositionalNetwork,
    example_batch,
    input_names,
    output_name,
    reproduces,
)
from tei_bento.model.tasks import Task

log = logging.getLogger(__name__)

TRACE_LENGTHS = (9, 5)  # the example the graph is recorded on: two rows, one padded


class TracedNetwork:
    """Callable like a transformers model: returns `.last_hidden_state` or `.logits`."""

    def __init__(self, graph: torch.jit.ScriptModule, output: str, names: list[str]) -> None:
        self.graph = graph
        self.output = output
        self.names = names

    def __call__(self, **tensors: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(**{self.output: self.graph(*(tensors[n] for n in self.names))})


def trace_network(
    network: torch.nn.Module, task: Task, config: Any, pad_token_id: int, with_types: bool
) -> TracedNetwork | None:
    """A checked trace of `network`, or None when it is not a BERT-family encoder or the
    trace does not reproduce the eager outputs. Run it on the thread that will serve."""
    model_type = getattr(config, "model_type", "")
    if model_type not in BERT_FAMILY:
        return None
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    if vocab < 2:
        return None
    module = PositionalNetwork(network, output_name(task), with_types).eval()
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about Python values: checked below
            example = example_batch(TRACE_LENGTHS, vocab, pad_token_id, with_types)
            traced = torch.jit.trace(module, example, strict=False, check_trace=False)
            graph = TracedNetwork(
                torch.jit.freeze(traced.eval()), output_name(task), input_names(with_types)
            )
            if not reproduces(graph, network, task, config, pad_token_id, with_types):
                log.warning("TorchScript trace of %s differs from eager; running eager", model_type)
                return None
    except Exception as exc:  # an architecture the tracer cannot follow runs eager
        log.warning("TorchScript trace of %s failed (%s); running eager", model_type, exc)
        return None
    return graph
