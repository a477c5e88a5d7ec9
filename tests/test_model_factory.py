"""Quick checks that tests/model_factory.py builds loadable, deterministic tiny models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests import model_factory as mf

BASE_CLASS = {
    "bert": "BertModel",
    "roberta": "RobertaModel",
    "xlm-roberta": "XLMRobertaModel",
    "camembert": "CamembertModel",
    "distilbert": "DistilBertModel",
    "mpnet": "MPNetModel",
    "deberta-v2": "DebertaV2Model",
    "modernbert": "ModernBertModel",
    "qwen2": "Qwen2Model",
    "qwen3": "Qwen3Model",
    "mistral": "MistralModel",
}

# first token / last token of a single encoded sequence, per family
TEMPLATE_ENDS = {
    "bert": ("[CLS]", "[SEP]"),
    "distilbert": ("[CLS]", "[SEP]"),
    "deberta-v2": ("[CLS]", "[SEP]"),
    "modernbert": ("[CLS]", "[SEP]"),
    "roberta": ("<s>", "</s>"),
    "xlm-roberta": ("<s>", "</s>"),
    "camembert": ("<s>", "</s>"),
    "mpnet": ("<s>", "</s>"),
    "qwen2": (None, "<|endoftext|>"),
    "qwen3": (None, "<|endoftext|>"),
    "mistral": ("<s>", "</s>"),
}


@pytest.fixture(scope="module", autouse=True)
def _warm_imports():
    """Pay transformers' one-time modeling imports (seconds) outside the timed builds."""
    import transformers.models.bert.modeling_bert  # noqa: F401


def test_architecture_list():
    assert set(mf.ARCHITECTURES) == set(BASE_CLASS)
    assert set(mf.ENCODER_ARCHITECTURES) | set(mf.DECODER_ARCHITECTURES) == set(mf.ARCHITECTURES)


@pytest.mark.parametrize("arch", mf.ARCHITECTURES)
def test_embedding_model_builds_and_encodes(tmp_path, arch):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    pooling = (
        "lasttoken" if arch in mf.DECODER_ARCHITECTURES else ("cls" if arch == "bert" else "mean")
    )
    start = time.perf_counter()
    path = mf.build_embedding_model(tmp_path / arch, arch, pooling=pooling)
    assert time.perf_counter() - start < 2.0

    cfg = json.loads((path / "config.json").read_text())
    assert cfg["architectures"] == [BASE_CLASS[arch]]
    tok = AutoTokenizer.from_pretrained(str(path))
    assert cfg["vocab_size"] == len(tok)
    assert 300 <= len(tok) <= 1000
    assert cfg["pad_token_id"] == tok.pad_token_id is not None
    assert tok.model_max_length == mf.MODEL_MAX_LENGTH
    assert mf.tokenizer_mismatches(path) == []

    first, last = TEMPLATE_ENDS[arch]
    tokens = tok.convert_ids_to_tokens(tok("Zebra café 🚀!")["input_ids"])
    assert tokens[-1] == last
    if first is not None:
        assert tokens[0] == first
    # unknown material must still tokenize into something besides the specials
    assert len(tokens) > 3

    pool = json.loads((path / "1_Pooling" / "config.json").read_text())
    assert pool["word_embedding_dimension"] == 32
    assert pool[mf._POOLING_FLAGS[pooling]] is True
    assert sum(v is True for k, v in pool.items() if k.startswith("pooling_mode_")) == 1

    model = SentenceTransformer(str(path), device="cpu")
    emb = model.encode(list(mf.SAMPLE_TEXTS))
    assert emb.shape == (len(mf.SAMPLE_TEXTS), 32)
    assert np.isfinite(emb).all()
    assert emb.std(axis=0).mean() > 1e-3  # texts do not collapse onto one vector
    single = np.stack([model.encode([t])[0] for t in mf.SAMPLE_TEXTS[:3]])
    np.testing.assert_allclose(emb[:3], single, atol=1e-5)
    assert model.max_seq_length == mf.MODEL_MAX_LENGTH


def test_dense_normalize_prompts_and_layout(tmp_path):
    from sentence_transformers import SentenceTransformer

    kwargs = {
        "pooling": "mean",
        "dense_layers": [(32, 24, "tanh"), (24, 8, None)],
        "max_seq_length": 16,
        "prompts": {"query": "query: ", "passage": "passage: "},
        "default_prompt_name": "query",
        "normalize_module": True,
    }
    legacy = mf.build_embedding_model(tmp_path / "legacy", "bert", **kwargs)
    native = mf.build_embedding_model(tmp_path / "native", "bert", **kwargs, layout="native")

    modules = json.loads((legacy / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == [
        "Transformer",
        "Pooling",
        "Dense",
        "Dense",
        "Normalize",
    ]
    assert [m["path"] for m in modules] == ["", "1_Pooling", "2_Dense", "3_Dense", "4_Normalize"]
    assert all(m["type"].startswith("sentence_transformers.models.") for m in modules)
    d2 = json.loads((legacy / "2_Dense" / "config.json").read_text())
    d3 = json.loads((legacy / "3_Dense" / "config.json").read_text())
    assert d2 == {
        "in_features": 32,
        "out_features": 24,
        "bias": True,
        "activation_function": "torch.nn.modules.activation.Tanh",
    }
    assert d3["activation_function"] == "torch.nn.modules.linear.Identity"
    assert (legacy / "2_Dense" / "model.safetensors").is_file()
    assert json.loads((legacy / "sentence_bert_config.json").read_text())["max_seq_length"] == 16
    st_cfg = json.loads((legacy / "config_sentence_transformers.json").read_text())
    assert st_cfg["prompts"] == kwargs["prompts"] and st_cfg["default_prompt_name"] == "query"

    m_legacy = SentenceTransformer(str(legacy), device="cpu")
    m_native = SentenceTransformer(str(native), device="cpu")
    assert m_legacy.max_seq_length == m_native.max_seq_length == 16
    texts = list(mf.SAMPLE_TEXTS[:4])
    a = m_legacy.encode(texts)
    assert a.shape == (4, 8)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, m_native.encode(texts), atol=1e-6)
    # the default prompt is applied; an explicit other prompt changes the result
    np.testing.assert_allclose(
        a, m_legacy.encode(["query: " + t for t in texts], prompt=""), atol=1e-5
    )
    assert not np.allclose(a, m_legacy.encode(texts, prompt_name="passage"), atol=1e-4)


def test_max_seq_length_default_and_determinism(tmp_path):
    p1 = mf.build_embedding_model(tmp_path / "a", "roberta", pooling="cls")
    p2 = mf.build_embedding_model(tmp_path / "b", "roberta", pooling="cls")
    assert "max_seq_length" not in json.loads((p1 / "sentence_bert_config.json").read_text())
    for name in ("model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json"):
        assert (p1 / name).read_bytes() == (p2 / name).read_bytes(), name
    p3 = mf.build_embedding_model(tmp_path / "c", "roberta", pooling="cls", seed=1)
    assert (p1 / "model.safetensors").read_bytes() != (p3 / "model.safetensors").read_bytes()
    # RoBERTa family offsets positions by pad_token_id + 1
    assert (
        json.loads((p1 / "config.json").read_text())["max_position_embeddings"]
        == mf.MODEL_MAX_LENGTH + 2
    )


def test_long_input_truncates_at_max_seq_length(tmp_path):
    from sentence_transformers import SentenceTransformer

    path = mf.build_embedding_model(tmp_path / "m", "xlm-roberta")
    model = SentenceTransformer(str(path), device="cpu")
    long_text = " ".join(mf.CORPUS)
    assert len(model.tokenizer(long_text, verbose=False)["input_ids"]) > mf.MODEL_MAX_LENGTH
    assert np.isfinite(model.encode([long_text])).all()


@pytest.mark.parametrize("arch", ["bert", "roberta", "xlm-roberta"])
@pytest.mark.parametrize("num_labels", [1, 3])
def test_cross_encoder(tmp_path, arch, num_labels):
    from sentence_transformers import CrossEncoder

    path = mf.build_cross_encoder(tmp_path / "ce", arch, num_labels=num_labels)
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["architectures"] == [BASE_CLASS[arch].replace("Model", "ForSequenceClassification")]
    if num_labels == 3:
        assert cfg["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
        assert cfg["label2id"] == {"negative": 0, "neutral": 1, "positive": 2}
    ce = CrossEncoder(str(path), device="cpu")
    scores = np.asarray(ce.predict([("q", "d"), *mf.SAMPLE_PAIRS]))
    assert scores.shape == ((4,) if num_labels == 1 else (4, 3))
    assert np.isfinite(scores).all()


def test_masked_lm(tmp_path):
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    path = mf.build_masked_lm(tmp_path / "mlm", "bert")
    assert json.loads((path / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForMaskedLM.from_pretrained(str(path)).eval()
    with torch.no_grad():
        logits = model(**tok(["hello world"], return_tensors="pt")).logits
    assert logits.shape[-1] == len(tok)
    assert torch.isfinite(logits).all()


def test_hub_cache_resolves(tmp_path):
    from huggingface_hub import hf_hub_download, snapshot_download
    from sentence_transformers import SentenceTransformer

    src = mf.build_embedding_model(
        tmp_path / "src", "bert", dense_layers=[(32, 8, "tanh")], normalize_module=True
    )
    cache = tmp_path / "cache"
    sha = mf.build_hub_cache(cache, "tiny-org/tiny-bert", src)
    sha_v1 = mf.build_hub_cache(cache, "tiny-org/tiny-bert", src, revision="v1")
    assert len(sha) == 40 and sha != sha_v1
    repo = cache / "models--tiny-org--tiny-bert"
    assert (repo / "refs" / "main").read_text() == sha

    snap = snapshot_download("tiny-org/tiny-bert", cache_dir=str(cache), local_files_only=True)
    assert Path(snap) == repo / "snapshots" / sha
    assert (Path(snap) / "2_Dense" / "model.safetensors").read_bytes() == (
        src / "2_Dense" / "model.safetensors"
    ).read_bytes()
    assert (
        Path(
            snapshot_download(
                "tiny-org/tiny-bert", revision="v1", cache_dir=str(cache), local_files_only=True
            )
        ).name
        == sha_v1
    )
    assert (
        Path(
            snapshot_download(
                "tiny-org/tiny-bert", revision=sha, cache_dir=str(cache), local_files_only=True
            )
        ).name
        == sha
    )
    assert (
        Path(
            hf_hub_download(
                "tiny-org/tiny-bert", "modules.json", cache_dir=str(cache), local_files_only=True
            )
        ).read_text()
        == (src / "modules.json").read_text()
    )

    # HF_HUB_OFFLINE=1 in a fresh process (only huggingface_hub is imported there)
    code = (
        "import sys; from huggingface_hub import snapshot_download; "
        "print(snapshot_download('tiny-org/tiny-bert', cache_dir=sys.argv[1]))"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run(
        [sys.executable, "-c", code, str(cache)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(out.stdout.strip()) == repo / "snapshots" / sha

    model = SentenceTransformer(
        "tiny-org/tiny-bert", cache_folder=str(cache), local_files_only=True, device="cpu"
    )
    reference = SentenceTransformer(str(src), device="cpu")
    np.testing.assert_allclose(model.encode(["hello"]), reference.encode(["hello"]), atol=1e-6)
