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
from typing import Any

import torch

from tei_bento.backends.base import Feeds
from tei_bento.backends.torch_eager import TorchBackend
from tei_bento.backends.verify import BERT_FAMILY, PositionalNetwork, example_feeds, reproduces

log = logging.getLogger(__name__)

TRACE_LENGTHS = (9, 5)  # the example the graph is recorded on: two rows, one padded


class TorchScriptBackend:
    name = "torchscript"
    accuracy = None

    def __init__(self, graph: torch.jit.ScriptModule, eager: TorchBackend) -> None:
        self.graph = graph
        self.device = eager.device
        self.input_names = eager.input_names
        self._tensors = eager.tensors

    def forward(self, feeds: Feeds) -> torch.Tensor:
        tensors = self._tensors(feeds)
        return self.graph(*(tensors[name] for name in self.input_names))


def trace(eager: TorchBackend, config: Any, pad_token_id: int) -> TorchScriptBackend | None:
    """A checked trace of the eager network, or None when it is not a BERT-family encoder or
    the trace does not reproduce the eager outputs. Run it on the thread that will serve."""
    model_type = getattr(config, "model_type", "")
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    if model_type not in BERT_FAMILY or vocab < 2:
        return None
    module = PositionalNetwork(eager.network, eager.output, eager.input_names).eval()
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about Python values: checked below
            example = eager.tensors(example_feeds(TRACE_LENGTHS, vocab, pad_token_id, eager.input_names))
            traced = torch.jit.trace(
                module, tuple(example[n] for n in eager.input_names), strict=False, check_trace=False
            )
            candidate = TorchScriptBackend(torch.jit.freeze(traced.eval()), eager)
            if not reproduces(candidate, eager, config, pad_token_id):
                log.warning("TorchScript trace of %s differs from eager; running eager", model_type)
                return None
    except Exception as exc:  # an architecture the tracer cannot follow runs eager
        log.warning("TorchScript trace of %s failed (%s); running eager", model_type, exc)
        return None
    return candidate
