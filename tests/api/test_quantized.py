"""Quantized embeddings through a real server (`embedding_type` on /embed, Cohere's
`embedding_types` on /v2/embed with the real `cohere.ClientV2`), against
`sentence_transformers.quantization.quantize_embeddings` with the same calibration texts."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import requests

from tei_bento.quantization import CALIBRATION_FILE, Calibration, read_texts
from tests.reference import without_normalize

TEXTS = [
    "What is Deep Learning?",
    "The cat sat on the mat.",
    "Paris is the capital of France",
    "a much longer sentence about the weather, the sea and the mountains far away",
]
TYPES = ("int8", "uint8", "binary", "ubinary")


def quantize_embeddings(*args, **kwargs):
    from sentence_transformers.util.quantization import quantize_embeddings as reference

    return reference(*args, **kwargs)


@pytest.fixture(scope="module")
def calibration(minilm_reference) -> np.ndarray:
    """The reference's calibration embeddings: the same bundled texts, through ST."""
    return minilm_reference.encode(read_texts(CALIBRATION_FILE), normalize_embeddings=True)


def embed(server, **body):
    answer = requests.post(server.url + "/embed", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    return np.asarray(answer.json())


def assert_same_buckets(got, want):
    """Equal buckets; where float noise puts a value on a bucket edge, one bucket apart."""
    assert got.shape == want.shape
    apart = np.abs(got.astype(np.int64) - want.astype(np.int64))
    assert apart.max() <= 1 and (apart == 0).mean() >= 0.99, (apart.max(), (apart == 0).mean())


def test_info_shows_the_calibration_ranges(default_server, calibration):
    quantization = requests.get(default_server.url + "/info", timeout=10).json()["quantization"]
    assert quantization["calibration"] == f"bundled: {len(read_texts(CALIBRATION_FILE))} texts"
    want = np.vstack((calibration.min(axis=0), calibration.max(axis=0)))
    np.testing.assert_allclose(np.asarray(quantization["int8_ranges"]), want, atol=1e-5)


@pytest.mark.parametrize("embedding_type", TYPES)
def test_embedding_types_equal_quantize_embeddings(default_server, minilm_reference, calibration, embedding_type):
    got = embed(default_server, inputs=TEXTS, embedding_type=embedding_type)
    want = quantize_embeddings(minilm_reference.encode(TEXTS), embedding_type, calibration_embeddings=calibration)
    assert_same_buckets(got, want)
    if embedding_type.endswith("binary"):
        assert got.shape == (len(TEXTS), 384 // 8)
        assert np.array_equal(got, want)


def test_buckets_follow_normalize_and_dimensions(default_server, minilm_reference):
    raw = without_normalize(minilm_reference)  # the bundled folder ends in a Normalize module
    raw_calibration = raw.encode(read_texts(CALIBRATION_FILE))
    got = embed(default_server, inputs=TEXTS, embedding_type="int8", normalize=False)
    want = quantize_embeddings(raw.encode(TEXTS), "int8", calibration_embeddings=raw_calibration)
    assert_same_buckets(got, want)

    def cut(vectors):
        vectors = vectors[:, :64]
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    got = embed(default_server, inputs=TEXTS, embedding_type="uint8", dimensions=64)
    want = quantize_embeddings(
        cut(raw.encode(TEXTS)), "uint8", calibration_embeddings=cut(raw_calibration)
    )
    assert_same_buckets(got, want)


@pytest.mark.parametrize("value", ["int4", "FLOAT", 8, None, ["int8"]])
def test_a_wrong_embedding_type_is_a_422_with_teis_body(default_server, value):
    answer = requests.post(default_server.url + "/embed", json={"inputs": "a", "embedding_type": value}, timeout=30)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error_type"] == "Validation"


def test_openai_base64_stays_float32(default_server, minilm_reference):
    answer = requests.post(
        default_server.url + "/v1/embeddings", json={"input": TEXTS[:1], "encoding_format": "base64"}, timeout=30
    ).json()
    vector = np.frombuffer(base64.b64decode(answer["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vector, minilm_reference.encode(TEXTS[:1])[0], atol=1e-5)


def test_cohere_client_v2_embed_with_every_type(default_server, minilm_reference, calibration):
    import cohere

    client = cohere.ClientV2(api_key="unused", base_url=default_server.url)
    answer = client.embed(
        model="embed-v4.0", texts=TEXTS, input_type="search_document",
        embedding_types=["float", "int8", "uint8", "binary", "ubinary", "base64"],
    )  # fmt: skip
    reference = minilm_reference.encode(TEXTS)
    embeddings = answer.embeddings
    np.testing.assert_allclose(np.asarray(embeddings.float_), reference, atol=1e-5)
    for kind in TYPES:
        want = quantize_embeddings(reference, kind, calibration_embeddings=calibration)
        assert_same_buckets(np.asarray(getattr(embeddings, kind)), want)
    decoded = [np.frombuffer(base64.b64decode(b), dtype="<f4") for b in embeddings.base64]
    np.testing.assert_allclose(np.stack(decoded), reference, atol=1e-5)
    assert answer.texts == TEXTS and answer.meta.billed_units.input_tokens > 0
    short = client.embed(model="m", texts=TEXTS[:1], input_type="search_query", output_dimension=64, embedding_types=["float"])
    full = reference[:1, :64]
    np.testing.assert_allclose(np.asarray(short.embeddings.float_), full / np.linalg.norm(full), atol=1e-5)


def test_v2_embed_refuses_long_texts_with_truncate_none(default_server):
    body = {"texts": ["word " * 1000], "truncate": "NONE", "model": "m"}
    answer = requests.post(default_server.url + "/v2/embed", json=body, timeout=30)
    assert answer.status_code in (413, 422) and answer.json()["error_type"] == "Validation"
    body["truncate"] = "START"
    assert requests.post(default_server.url + "/v2/embed", json=body, timeout=30).status_code == 200
    bad = requests.post(default_server.url + "/v2/embed", json={"texts": ["a"], "embedding_types": ["int4"]}, timeout=30)
    assert bad.status_code == 422 and bad.json()["error_type"] == "Validation"


def test_splade_refuses_embedding_types(server_pool, splade_folder):
    server = server_pool("--model-id", str(splade_folder), "--pooling", "splade")
    answer = requests.post(server.url + "/embed", json={"inputs": "a", "normalize": False, "embedding_type": "binary"})
    assert answer.status_code == 424, answer.text
    assert answer.json()["error"] == "Backend error: `embedding_type` is not available for SPLADE models"


def test_own_calibration_texts(server_pool, tmp_path_factory, minilm_reference):
    texts = [f"calibration sentence number {i} about topic {i % 5}" for i in range(40)]
    path = tmp_path_factory.mktemp("calibration") / "texts.txt"
    path.write_text("\n".join(texts))
    server = server_pool("--calibration-texts", str(path))
    calibration = minilm_reference.encode(texts)
    quantization = requests.get(server.url + "/info", timeout=10).json()["quantization"]
    assert quantization["calibration"] == f"{path}: 40 texts"
    got = embed(server, inputs=TEXTS, embedding_type="int8")
    assert_same_buckets(got, quantize_embeddings(minilm_reference.encode(TEXTS), "int8", calibration_embeddings=calibration))


def test_given_ranges_are_used_as_given(tmp_path):
    from tei_bento.quantization import quantize, read_ranges

    ranges = [[-0.5] * 4, [0.5] * 4]
    path = tmp_path / "ranges.json"
    path.write_text(str(ranges))
    calibration = Calibration("given", given=read_ranges(path))
    vectors = np.asarray([[-0.5, 0.0, 0.25, 0.5]], dtype=np.float32)
    assert np.array_equal(
        quantize(vectors, "int8", calibration.ranges(True, None)),
        quantize_embeddings(vectors, "int8", ranges=np.asarray(ranges, dtype=np.float32)),
    )
    assert calibration.ranges(False, 2).shape == (2, 2)
