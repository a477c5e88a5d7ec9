"""TorchScript traces serve only where they reproduce the eager network exactly.

The served path (tiny BERT-family models compared with sentence-transformers over HTTP) is
in tests/api/test_architectures.py; here, the trace's guards: shapes it was not traced on,
an architecture outside the family, and a network whose Python branches on the input.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tei_bento.backends.torch_eager import TorchBackend
from tei_bento.backends.torchscript import trace
from tei_bento.backends.verify import example_feeds
from tests.model_factory import build_embedding_model


@pytest.fixture(scope="module")
def tiny_bert(models_dir):
    from transformers import AutoConfig, AutoModel

    folder = build_embedding_model(models_dir / "torchscript-bert", "bert", pooling="cls")
    config = AutoConfig.from_pretrained(folder)
    network = AutoModel.from_pretrained(folder, attn_implementation="sdpa").eval()
    return TorchBackend(network, "last_hidden_state", torch.device("cpu")), config


@pytest.mark.parametrize("lengths", [(1,), (7, 3), (40, 2, 17, 33), (64,)])
def test_trace_equals_eager_on_unseen_shapes(tiny_bert, lengths):
    eager, config = tiny_bert
    traced = trace(eager, config, config.pad_token_id)
    assert traced is not None and traced.name == "torchscript"
    feeds = example_feeds(lengths, config.vocab_size, config.pad_token_id, eager.input_names)
    with torch.inference_mode():
        got, want = traced.forward(feeds), eager.forward(feeds)
    keep = torch.from_numpy(feeds["attention_mask"]).bool()
    torch.testing.assert_close(got[keep], want[keep], rtol=1e-5, atol=1e-5)


def test_other_architectures_run_eager(tiny_bert):
    eager, config = tiny_bert
    qwen = SimpleNamespace(model_type="qwen2", vocab_size=config.vocab_size)
    assert trace(eager, qwen, 0) is None


class BranchesOnLength(torch.nn.Module):
    """Python control flow on a shape: a trace freezes whichever branch it saw."""

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        states = input_ids.float().unsqueeze(-1).repeat(1, 1, 4)
        if input_ids.shape[1] > 10:
            states = states * 2
        return SimpleNamespace(last_hidden_state=states)


def test_a_trace_that_differs_from_eager_is_refused():
    config = SimpleNamespace(model_type="bert", vocab_size=5000)
    eager = TorchBackend(BranchesOnLength(), "last_hidden_state", torch.device("cpu"))
    assert trace(eager, config, 0) is None
