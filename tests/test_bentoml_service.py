"""`bentoml serve service:TEIBento` serves the same contract; `--arg` takes TEI's names."""

from __future__ import annotations

import pytest
import requests

from tests.reference import assert_same_vectors
from tests.server import bentoml_server


@pytest.fixture(scope="module")
def bento():
    server = bentoml_server("--arg", "max_client_batch_size=4", "--arg", "served_model_name=minilm")
    server.start()
    yield server
    server.stop()


def test_bentoml_serves_embeddings(bento, minilm_reference):
    texts = ["BentoML serves this", "and TEI clients do not notice"]
    got = requests.post(bento.url + "/embed", json={"inputs": texts}, timeout=60).json()
    assert_same_vectors(got, minilm_reference.encode(texts))


def test_bentoml_arguments_reach_the_engine(bento):
    info = requests.get(bento.url + "/info").json()
    assert info["max_client_batch_size"] == 4
    assert info["served_model_name"] == "minilm"
    too_many = requests.post(bento.url + "/embed", json={"inputs": ["a"] * 5})
    assert too_many.status_code == 422


def test_bentoml_metrics_include_tei_metrics(bento):
    requests.post(bento.url + "/embed", json={"inputs": "count me"})
    text = requests.get(bento.url + "/metrics").text
    assert "te_request_duration" in text and "te_batch_next_size" in text


def test_bentoml_openai_route(bento):
    body = requests.post(bento.url + "/v1/embeddings", json={"input": "x", "model": "minilm"}).json()
    assert body["model"] == "minilm" and len(body["data"][0]["embedding"]) == 384
