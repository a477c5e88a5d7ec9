"""/embed on the real all-MiniLM-L6-v2 (the default model) against SentenceTransformer."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from tests.reference import assert_same_vectors, without_normalize

TEXTS = [
    "What is Deep Learning?",
    "Deep learning is part of a broader family of machine learning methods.",
    "Le chat est sur le tapis.",
    "短い日本語の文",
    "emoji 🚀 and symbols ∑ ∫",
]
LONG = " ".join(["The quick brown fox jumps over the lazy dog."] * 60)


def post(server, path: str, body: dict) -> requests.Response:
    return requests.post(server.url + path, json=body, timeout=60)


def test_single_string_answers_one_vector(default_server, minilm_reference):
    response = post(default_server, "/embed", {"inputs": TEXTS[0]})
    assert response.status_code == 200
    got = response.json()
    assert len(got) == 1 and len(got[0]) == minilm_reference.get_embedding_dimension()
    assert_same_vectors(got, minilm_reference.encode([TEXTS[0]]))


def test_batch_normalized_matches_reference(default_server, minilm_reference):
    got = post(default_server, "/embed", {"inputs": TEXTS}).json()
    assert_same_vectors(got, minilm_reference.encode(TEXTS))
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_unnormalized_matches_reference_without_normalize_module(default_server, minilm_reference):
    got = post(default_server, "/embed", {"inputs": TEXTS, "normalize": False}).json()
    expected = without_normalize(minilm_reference).encode(TEXTS)
    assert_same_vectors(got, expected)
    assert not np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)


@pytest.mark.parametrize("dimensions", [1, 64, 383, 384])
def test_dimensions_cut_then_normalize(default_server, minilm_reference, dimensions):
    got = post(default_server, "/embed", {"inputs": TEXTS, "dimensions": dimensions}).json()
    full = without_normalize(minilm_reference).encode(TEXTS)[:, :dimensions]
    expected = full / np.linalg.norm(full, axis=1, keepdims=True)
    assert np.asarray(got).shape == (len(TEXTS), dimensions)
    if dimensions > 1:
        assert_same_vectors(got, expected)
    else:
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_dimensions_without_normalize_is_a_plain_cut(default_server, minilm_reference):
    got = post(default_server, "/embed", {"inputs": TEXTS, "dimensions": 32, "normalize": False})
    expected = without_normalize(minilm_reference).encode(TEXTS)[:, :32]
    assert_same_vectors(got.json(), expected)


def test_right_truncation_matches_reference(default_server, minilm_reference):
    got = post(default_server, "/embed", {"inputs": [LONG], "truncate": True}).json()
    assert_same_vectors(got, minilm_reference.encode([LONG]))


def test_left_truncation_matches_reference(default_server, minilm_reference):
    text = "First words are unique here. " + LONG + " and the very end is different"
    got = post(
        default_server, "/embed", {"inputs": [text], "truncate": True, "truncation_direction": "left"}
    ).json()
    tokenizer = minilm_reference.tokenizer
    tokenizer.truncation_side = "left"
    try:
        expected = minilm_reference.encode([text])
    finally:
        tokenizer.truncation_side = "right"
    assert_same_vectors(got, expected)
    right = post(default_server, "/embed", {"inputs": [text], "truncate": True}).json()
    assert float(np.dot(got[0], right[0])) < 0.999  # the two ends really differ


def test_capitalized_truncation_direction_is_accepted(default_server):
    response = post(default_server, "/embed", {"inputs": LONG, "truncation_direction": "Left"})
    assert response.status_code == 200


def test_auto_truncate_applies_when_truncate_is_null(default_server, minilm_reference):
    got = post(default_server, "/embed", {"inputs": LONG, "truncate": None}).json()
    assert_same_vectors(got, minilm_reference.encode([LONG]))


def test_padding_does_not_leak_into_short_inputs(default_server):
    alone = post(default_server, "/embed", {"inputs": ["short text"], "normalize": False}).json()
    batch = post(
        default_server,
        "/embed",
        {"inputs": [LONG, "short text", LONG[:500]], "normalize": False},
    ).json()
    assert_same_vectors([batch[1]], alone, min_cosine=0.999999, atol=1e-5)


def test_token_id_inputs_embed_like_their_text(default_server):
    tokens = post(default_server, "/tokenize", {"inputs": TEXTS[1]}).json()[0]
    ids = [t["id"] for t in tokens]
    by_ids = post(default_server, "/embed", {"inputs": ids}).json()
    by_text = post(default_server, "/embed", {"inputs": TEXTS[1]}).json()
    assert_same_vectors(by_ids, by_text, min_cosine=0.999999)
    mixed = post(default_server, "/embed", {"inputs": [ids, TEXTS[0]]}).json()
    assert len(mixed) == 2
    assert_same_vectors(mixed[:1], by_text, min_cosine=0.999999)


def test_root_route_embeds_for_an_embedding_model(default_server, minilm_reference):
    for path in ("/", "/invocations"):
        got = post(default_server, path, {"inputs": TEXTS[:2]}).json()
        assert_same_vectors(got, minilm_reference.encode(TEXTS[:2]))


def test_embed_all_returns_every_token_state(default_server, minilm_reference):
    got = post(default_server, "/embed_all", {"inputs": TEXTS[:2]}).json()
    features = minilm_reference.tokenize(TEXTS[:2])
    output = minilm_reference[0](features)
    states = output["token_embeddings"].detach().numpy()
    mask = features["attention_mask"].numpy()
    for row, item in enumerate(got):
        expected = states[row][mask[row] == 1]
        assert np.asarray(item).shape == expected.shape
        np.testing.assert_allclose(item, expected, atol=1e-4)


def test_similarity_is_cosine_of_embeddings(default_server, minilm_reference):
    body = {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS[1:]}}
    got = post(default_server, "/similarity", body).json()
    vectors = minilm_reference.encode(TEXTS)
    expected = vectors[1:] @ vectors[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_timing_headers_are_present(default_server):
    response = post(default_server, "/embed", {"inputs": TEXTS})
    for header in (
        "x-compute-time",
        "x-total-time",
        "x-tokenization-time",
        "x-queue-time",
        "x-inference-time",
        "x-compute-characters",
        "x-compute-tokens",
    ):
        assert response.headers[header].isdigit(), header
    assert int(response.headers["x-compute-characters"]) == sum(len(t) for t in TEXTS)
