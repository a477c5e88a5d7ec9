"""--backend onnx and --quantize int8 through a real server, against float32 references."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from tests.reference import assert_same_vectors, cosine_rows

TEXTS = [
    "What is Deep Learning?",
    "ONNX Runtime fuses attention, GELU and layer norms into single kernels.",
    "A very different sentence about cooking pasta with tomatoes and basil.",
    "short",
]


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    return {"TEI_BENTO_CACHE": str(tmp_path_factory.mktemp("onnx-cache"))}


def embed(server, texts):
    response = requests.post(server.url + "/embed", json={"inputs": texts}, timeout=60)
    assert response.status_code == 200, response.text
    return np.asarray(response.json())


def test_onnx_float32_equals_sentence_transformers(server_pool, cache_env, minilm_reference):
    server = server_pool("--backend", "onnx", env=cache_env)
    assert_same_vectors(embed(server, TEXTS), minilm_reference.encode(TEXTS))
    info = requests.get(server.url + "/info").json()
    assert info["backend"] == "onnx" and info["model_dtype"] == "float32"


def test_int8_is_close_and_reports_its_accuracy(server_pool, cache_env, minilm_reference):
    server = server_pool("--quantize", "int8", env=cache_env)
    cos = cosine_rows(embed(server, TEXTS), minilm_reference.encode(TEXTS))
    assert cos.min() > 0.98, cos
    info = requests.get(server.url + "/info").json()
    assert info["backend"] == "onnx-int8"
    accuracy = info["accuracy"]
    assert 0.98 < accuracy["min_cosine_to_float32"] <= accuracy["mean_cosine_to_float32"] <= 1.0


def test_onnx_reranker_equals_cross_encoder(server_pool, cache_env, reranker_folder):
    from sentence_transformers import CrossEncoder

    folder = reranker_folder("bert")
    server = server_pool("--model-id", str(folder), "--backend", "onnx", env=cache_env)
    texts = ["the cat sat", "a dog ran in the park", "weather report"]
    got = requests.post(
        server.url + "/rerank", json={"query": "where is the cat", "texts": texts, "raw_scores": True}
    ).json()
    scores = {r["index"]: r["score"] for r in got}
    expected = CrossEncoder(str(folder), device="cpu").predict(
        [("where is the cat", t) for t in texts], activation_fn=lambda x: x
    )
    np.testing.assert_allclose([scores[i] for i in range(3)], expected, atol=1e-4)


def test_onnx_batch_matches_single(server_pool, cache_env):
    server = server_pool("--backend", "onnx", env=cache_env)
    alone = embed(server, ["short"])
    batch = embed(server, [TEXTS[1] * 5, "short"])
    assert_same_vectors(batch[1:], alone, min_cosine=0.999999, atol=1e-5)
