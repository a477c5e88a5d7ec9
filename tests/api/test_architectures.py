"""Every supported architecture, served over HTTP, equals SentenceTransformer on its folder.

One tiny random model per architecture is built once per session and served by its own
real server; each case compares /embed with `SentenceTransformer(folder).encode(...)`.
Features are spread over the architectures (CLS and last-token pooling, Dense modules,
prompts, a short max_seq_length) so each is exercised through a real server at least once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tei_bento.backends.verify import BERT_FAMILY
from tests.model_factory import ARCHITECTURES, DECODER_ARCHITECTURES, build_embedding_model
from tests.reference import assert_same_vectors

PROMPTS = {"query": "query: ", "passage": "passage: "}
TEXTS = [
    "the cat sat on the mat",
    "a much longer sentence about the weather and the sea and the mountains far away",
    "numbers 12345 and UPPER case and unknown wörds ✓",
]
LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 12)


@dataclass(frozen=True)
class Variant:
    pooling: str
    dense_layers: tuple = ()
    max_seq_length: int | None = 24
    extra: dict[str, Any] = field(default_factory=dict)


VARIANTS = {
    "bert": Variant("cls", dense_layers=((32, 16, "tanh"), (16, 8, "identity"))),
    "roberta": Variant("mean", max_seq_length=20),
    "xlm-roberta": Variant("mean", dense_layers=((32, 24, "relu"),)),
    "camembert": Variant("cls"),
    "distilbert": Variant("mean", max_seq_length=None),
    "mpnet": Variant("mean"),
    "deberta-v2": Variant("cls"),
    "modernbert": Variant("mean"),
    "qwen2": Variant("lasttoken"),
    "qwen3": Variant("lasttoken", dense_layers=((32, 16, "identity"),)),
    "mistral": Variant("lasttoken"),
}


@pytest.fixture(scope="session")
def served_architectures(models_dir, server_pool):
    cache: dict[str, tuple[Any, Any, Path]] = {}

    def get(arch: str):
        if arch not in cache:
            from sentence_transformers import SentenceTransformer

            variant = VARIANTS[arch]
            folder = build_embedding_model(
                models_dir / f"embed-{arch}",
                arch,
                pooling=variant.pooling,
                dense_layers=variant.dense_layers,
                max_seq_length=variant.max_seq_length,
                prompts=PROMPTS,
            )
            server = server_pool("--model-id", str(folder))
            reference = SentenceTransformer(str(folder), device="cpu")
            cache[arch] = (server, reference, folder)
        return cache[arch]

    return get


def embed(server, **body) -> np.ndarray:
    response = requests.post(server.url + "/embed", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return np.asarray(response.json())


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_embeddings_match_sentence_transformers(arch, served_architectures):
    server, reference, _ = served_architectures(arch)
    expected = reference.encode(TEXTS, normalize_embeddings=True)
    assert_same_vectors(embed(server, inputs=TEXTS), expected)
    raw = reference.encode(TEXTS)
    assert_same_vectors(embed(server, inputs=TEXTS, normalize=False), raw)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_prompts_dimensions_and_truncation(arch, served_architectures):
    server, reference, _ = served_architectures(arch)
    expected = reference.encode(TEXTS, prompt_name="query", normalize_embeddings=True)
    assert_same_vectors(embed(server, inputs=TEXTS, prompt_name="query"), expected)

    raw = reference.encode(TEXTS)[:, :4]
    cut = embed(server, inputs=TEXTS, dimensions=4)
    assert_same_vectors(cut, raw / np.linalg.norm(raw, axis=1, keepdims=True))

    assert_same_vectors(
        embed(server, inputs=[LONG], normalize=False, truncate=True), reference.encode([LONG])
    )
    reference.tokenizer.truncation_side = "left"
    try:
        left = reference.encode([LONG + " final words"])
    finally:
        reference.tokenizer.truncation_side = "right"
    got = embed(
        server,
        inputs=[LONG + " final words"],
        normalize=False,
        truncate=True,
        truncation_direction="left",
    )
    assert_same_vectors(got, left)


@pytest.mark.parametrize("arch", ["bert", "qwen3"])
def test_batch_does_not_change_an_embedding(arch, served_architectures):
    server, _, _ = served_architectures(arch)
    alone = embed(server, inputs=["short one"], normalize=False)
    batch = embed(server, inputs=[LONG, "short one", TEXTS[1]], normalize=False)
    assert_same_vectors(batch[1:2], alone, min_cosine=0.999999, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_bert_family_is_served_by_onnx_runtime_and_others_by_torch(arch, served_architectures):
    """The vectors above came through ONNX Runtime where the default (`--backend auto`)
    picks it: float32 BERT-family encoders on CPU whose graph reproduced torch."""
    server, _, _ = served_architectures(arch)
    info = requests.get(server.url + "/info", timeout=10).json()
    assert info["backend"] == ("onnx" if arch in BERT_FAMILY else "torch")


@pytest.mark.parametrize("arch", ["roberta", "bert"])
def test_torch_backend_traced_and_eager_give_the_same_vectors(arch, served_architectures, server_pool):
    """`--backend torch` serves a TorchScript trace, `--torchscript false` eager: all three
    backends agree with sentence-transformers and with each other."""
    default, reference, folder = served_architectures(arch)
    traced = server_pool("--model-id", str(folder), "--backend", "torch")
    eager = server_pool("--model-id", str(folder), "--backend", "torch", "--torchscript", "false")
    assert requests.get(traced.url + "/info", timeout=10).json()["backend"] == "torchscript"
    assert requests.get(eager.url + "/info", timeout=10).json()["backend"] == "torch"
    want = embed(default, inputs=TEXTS, normalize=False)
    for server in (traced, eager):
        got = embed(server, inputs=TEXTS, normalize=False)
        assert_same_vectors(got, reference.encode(TEXTS))
        assert_same_vectors(got, want, min_cosine=0.999999, atol=1e-5)


def test_decoders_pool_the_last_token(served_architectures):
    for arch in DECODER_ARCHITECTURES:
        server, _, _ = served_architectures(arch)
        info = requests.get(server.url + "/info").json()
        assert info["model_type"] == {"embedding": {"pooling": "last_token"}}


def test_pooling_override_changes_the_answer(served_architectures, server_pool):
    _, reference, folder = served_architectures("bert")
    server = server_pool("--model-id", str(folder), "--pooling", "mean")
    from sentence_transformers import SentenceTransformer, models

    transformer = reference[0]
    pooling = models.Pooling(transformer.get_embedding_dimension(), "mean")
    mean_model = SentenceTransformer(modules=[transformer, pooling, *list(reference)[2:]], device="cpu")
    assert_same_vectors(embed(server, inputs=TEXTS, normalize=False), mean_model.encode(TEXTS))


def test_dense_path_selects_one_dense_module(served_architectures, server_pool):
    _, reference, folder = served_architectures("bert")
    server = server_pool("--model-id", str(folder), "--dense-path", "2_Dense")
    from sentence_transformers import SentenceTransformer

    first_dense_only = SentenceTransformer(modules=list(reference)[:3], device="cpu")
    got = embed(server, inputs=TEXTS, normalize=False)
    assert got.shape == (len(TEXTS), 16)
    assert_same_vectors(got, first_dense_only.encode(TEXTS))
