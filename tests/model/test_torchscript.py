"""TorchScript traces serve only where they reproduce the eager network exactly.

The served path (tiny BERT-family models compared with sentence-transformers over HTTP) is
in tests/api/test_architectures.py; here, the trace's guards: shapes it was not traced on,
an architecture outside the family, and a network whose Python branches on the input.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tei_bento.model.tasks import Task
from tei_bento.model.torchscript import example_batch, trace_network
from tests.model_factory import build_embedding_model


@pytest.fixture(scope="module")
def tiny_bert(models_dir):
    from transformers import AutoConfig, AutoModel

    folder = build_embedding_model(models_dir / "torchscript-bert", "bert", pooling="cls")
    config = AutoConfig.from_pretrained(folder)
    return AutoModel.from_pretrained(folder, attn_implementation="sdpa").eval(), config


@pytest.mark.parametrize("lengths", [(1,), (7, 3), (40, 2, 17, 33), (64,)])
def test_trace_equals_eager_on_unseen_shapes(tiny_bert, lengths):
    network, config = tiny_bert
    traced = trace_network(network, Task.EMBEDDING, config, config.pad_token_id, True)
    assert traced is not None
    ids, mask, types = example_batch(lengths, config.vocab_size, config.pad_token_id, True)
    with torch.inference_mode():
        got = traced(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        want = network(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    keep = mask.bool()
    torch.testing.assert_close(got[keep], want[keep], rtol=1e-5, atol=1e-5)


def test_other_architectures_run_eager(tiny_bert):
    network, config = tiny_bert
    qwen = SimpleNamespace(model_type="qwen2", vocab_size=config.vocab_size)
    assert trace_network(network, Task.EMBEDDING, qwen, 0, True) is None


class BranchesOnLength(torch.nn.Module):
    """Python control flow on a shape: a trace freezes whichever branch it saw."""

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        states = input_ids.float().unsqueeze(-1).repeat(1, 1, 4)
        if input_ids.shape[1] > 10:
            states = states * 2
        return SimpleNamespace(last_hidden_state=states)


def test_a_trace_that_differs_from_eager_is_refused():
    config = SimpleNamespace(model_type="bert", vocab_size=5000)
    assert trace_network(BranchesOnLength(), Task.EMBEDDING, config, 0, True) is None
