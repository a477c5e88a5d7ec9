"""/rerank and /v1/rerank through a real server, compared with sentence-transformers' CrossEncoder.

A tiny random reranker (one-label sequence classifier) per architecture is built once per
session and served with few concurrency permits, so that one rerank can run out of them.
Scores must equal `CrossEncoder(folder).predict(pairs)` (sigmoid) and its raw logits, in
TEI's order; the Dify and Cohere forms must give the same order and scores.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import requests
import torch

from tests.conftest import RERANK_PERMITS, RERANKER_ARCHITECTURES
from tests.reference import assert_tei_error

QUERY = "What is the capital of France?"
TEXTS = [
    "Paris is the capital and the largest city of France.",
    "Berlin has about 3.7 million inhabitants.",
    "The cat sat on the mat while the dog slept in the sun.",
    "Ünïcödé passage 🚀 with café and an unknownword.",
    "capital",
    "France France France, Paris Paris.",
]
LONG_QUERY = " ".join(["how many people live in the capital of france"] * 16)
LONG_TEXT = " ".join(["the quick brown fox jumps over the lazy dog near the river bank"] * 12)


@pytest.fixture(scope="module")
def cross_encoders(reranker_folder):
    from sentence_transformers import CrossEncoder

    cache = {}

    def get(arch: str):
        if arch not in cache:
            cache[arch] = CrossEncoder(str(reranker_folder(arch)), device="cpu")
        return cache[arch]

    return get


def post(server, path: str, body: dict) -> requests.Response:
    return requests.post(server.url + path, json=body, timeout=60)


def rerank(server, **body):
    response = post(server, "/rerank", body)
    assert response.status_code == 200, response.text
    return response.json()


def expected_ranking(scores) -> list[int]:
    """TEI's order: ascending stable sort, then reversed (ties: higher index first)."""
    return list(reversed(sorted(range(len(scores)), key=lambda i: scores[i])))  # noqa: C413


def reference_scores(cross_encoder, query: str, texts: list[str], raw: bool = False) -> np.ndarray:
    pairs = [(query, text) for text in texts]
    kwargs = {"activation_fn": torch.nn.Identity()} if raw else {}
    return np.asarray(cross_encoder.predict(pairs, **kwargs), dtype=np.float64)


def assert_ranked_like(answer, expected: np.ndarray, score_key: str = "score") -> None:
    indices = [item["index"] for item in answer]
    got = np.asarray([item[score_key] for item in answer], dtype=np.float64)
    assert sorted(indices) == list(range(len(expected)))
    np.testing.assert_allclose(got, expected[indices], rtol=1e-5, atol=1e-6)
    assert all(a >= b for a, b in itertools.pairwise(got)), got  # best first
    # Same order as sorting the reference (the scores here are far apart, no near-ties).
    assert indices == expected_ranking(list(expected))


@pytest.mark.parametrize("arch", RERANKER_ARCHITECTURES)
def test_scores_match_cross_encoder(arch, reranker_server, cross_encoders):
    server, reference = reranker_server(arch), cross_encoders(arch)

    answer = rerank(server, query=QUERY, texts=TEXTS)
    assert_ranked_like(answer, reference_scores(reference, QUERY, TEXTS))
    assert all(set(item) == {"index", "score"} for item in answer)

    raw = rerank(server, query=QUERY, texts=TEXTS, raw_scores=True)
    assert_ranked_like(raw, reference_scores(reference, QUERY, TEXTS, raw=True))

    with_text = rerank(server, query=QUERY, texts=TEXTS, return_text=True)
    assert [item["index"] for item in with_text] == [item["index"] for item in answer]
    assert all(item["text"] == TEXTS[item["index"]] for item in with_text)


@pytest.mark.parametrize("arch", RERANKER_ARCHITECTURES)
def test_long_pairs_are_truncated_like_the_tokenizer(arch, reranker_server, cross_encoders):
    server, reference = reranker_server(arch), cross_encoders(arch)
    max_length = reference.tokenizer.model_max_length
    cases = [(LONG_QUERY, LONG_TEXT), ("short query", LONG_TEXT), (LONG_QUERY, "short text")]
    for query, text in cases:
        assert len(reference.tokenizer(query, text)["input_ids"]) > max_length

    texts = [LONG_TEXT, "short text"]
    for query in (LONG_QUERY, "short query"):
        by_direction = {}
        for direction in ("right", "left"):
            reference.tokenizer.truncation_side = direction
            try:
                expected = by_direction[direction] = reference_scores(
                    reference, query, texts, raw=True
                )
            finally:
                reference.tokenizer.truncation_side = "right"
            answer = rerank(
                server,
                query=query,
                texts=texts,
                raw_scores=True,
                truncate=True,
                truncation_direction=direction.capitalize() if query == LONG_QUERY else direction,
            )
            got = {item["index"]: item["score"] for item in answer}
            np.testing.assert_allclose(
                [got[0], got[1]],
                expected,
                rtol=1e-5,
                atol=1e-6,
                err_msg=f"{query[:12]} {direction}",
            )
        assert by_direction["left"][0] != pytest.approx(by_direction["right"][0])  # cut differently

    # The server's default (auto-truncate) truncates too; without truncation it refuses.
    default = rerank(server, query=LONG_QUERY, texts=[LONG_TEXT], raw_scores=True)
    np.testing.assert_allclose(
        default[0]["score"],
        reference_scores(reference, LONG_QUERY, [LONG_TEXT], raw=True)[0],
        rtol=1e-5,
        atol=1e-6,
    )
    full = len(reference.tokenizer(LONG_QUERY, LONG_TEXT)["input_ids"])
    response = post(
        server, "/rerank", {"query": LONG_QUERY, "texts": [LONG_TEXT], "truncate": False}
    )
    assert response.status_code == 422, response.text
    assert response.json() == {
        "error": f"Input validation error: `inputs` must have less than {max_length} tokens. Given: {full}",
        "error_type": "Validation",
    }


@pytest.mark.parametrize("arch", RERANKER_ARCHITECTURES)
def test_dify_and_cohere_forms_give_the_same_ranking(arch, reranker_server):
    server = reranker_server(arch)
    tei = rerank(server, query=QUERY, texts=TEXTS)
    order = [item["index"] for item in tei]
    scores = [item["score"] for item in tei]

    dify = post(server, "/rerank", {"query": QUERY, "documents": TEXTS})
    assert dify.status_code == 200, dify.text
    results = dify.json()["results"]
    assert [r["index"] for r in results] == order
    np.testing.assert_allclose([r["relevance_score"] for r in results], scores, rtol=1e-6)
    assert all("document" not in r for r in results)

    for path in ("/v1/rerank", "/rerank"):
        cohere = post(
            server,
            path,
            {
                "query": QUERY,
                "documents": TEXTS,
                "top_n": 3,
                "return_documents": True,
                "model": "x",
            },
        )
        assert cohere.status_code == 200, cohere.text
        results = cohere.json()["results"]
        assert [r["index"] for r in results] == order[:3]
        np.testing.assert_allclose([r["relevance_score"] for r in results], scores[:3], rtol=1e-6)
        assert [r["document"] for r in results] == [{"text": TEXTS[i]} for i in order[:3]]

    # Cohere also accepts documents as objects; without return_documents none come back.
    v1 = post(server, "/v1/rerank", {"query": QUERY, "documents": [{"text": t} for t in TEXTS]})
    assert v1.status_code == 200, v1.text
    results = v1.json()["results"]
    assert [r["index"] for r in results] == order
    np.testing.assert_allclose([r["relevance_score"] for r in results], scores, rtol=1e-6)
    assert all(set(r) == {"index", "relevance_score"} for r in results)


def test_equal_scores_list_the_higher_index_first(reranker_server):
    from tei_bento.answers import tei_order

    assert tei_order([0.5, 0.9, 0.5, 0.5]) == [1, 3, 2, 0]  # TEI: ascending, stable, reversed
    # Over HTTP, identical texts score equal to float noise (GEMM rows may round differently),
    # so the answer must follow TEI's rule on the scores it reports.
    server = reranker_server("bert")
    texts = ["the same passage about paris"] * 4
    for raw in (False, True):
        answer = rerank(server, query=QUERY, texts=texts, raw_scores=raw)
        scores = {item["index"]: item["score"] for item in answer}
        assert max(scores.values()) - min(scores.values()) < 1e-6
        assert [item["index"] for item in answer] == tei_order([scores[i] for i in range(4)])


def test_info_reports_a_reranker(reranker_server):
    for arch in RERANKER_ARCHITECTURES:
        info = requests.get(reranker_server(arch).url + "/info", timeout=30).json()
        assert info["model_type"] == {
            "reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}
        }
        assert info["max_input_length"] == 128


def test_root_and_invocations_rerank(reranker_server):
    server = reranker_server("roberta")
    expected = rerank(server, query=QUERY, texts=TEXTS, return_text=True)
    for path in ("/", "/invocations"):
        response = post(server, path, {"query": QUERY, "texts": TEXTS, "return_text": True})
        assert response.status_code == 200, (path, response.text)
        assert response.json() == expected
    vertex = post(server, "/vertex", {"instances": [{"query": QUERY, "texts": TEXTS[:2]}]})
    assert vertex.status_code == 200, vertex.text
    assert vertex.json() == {"predictions": [rerank(server, query=QUERY, texts=TEXTS[:2])]}


ERROR_CASES = [
    ("/rerank", {"query": QUERY, "texts": []}, 400, "`texts` cannot be empty", "Empty"),
    ("/rerank", {"query": QUERY, "documents": []}, 400, "`texts` cannot be empty", "Empty"),
    ("/v1/rerank", {"query": QUERY, "documents": []}, 400, "`texts` cannot be empty", "Empty"),
    (
        "/rerank",
        {"query": "", "texts": ["a", ""]},
        400,
        "Input validation error: `inputs` cannot be empty",
        "Empty",
    ),
    (
        "/rerank",
        {"query": QUERY, "texts": ["a"] * 33},
        422,
        "batch size 33 > maximum allowed batch size 32",
        "Validation",
    ),
    (
        "/v1/rerank",
        {"query": QUERY, "documents": ["a"] * 33},
        422,
        "batch size 33 > maximum allowed batch size 32",
        "Validation",
    ),
    (
        "/embed",
        {"inputs": "a"},
        424,
        "Backend error: Model is not an embedding model",
        "Backend",
    ),
    (
        "/embed_all",
        {"inputs": "a"},
        424,
        "Backend error: Model is not an embedding model",
        "Backend",
    ),
    (
        "/embed_sparse",
        {"inputs": "a"},
        424,
        "Backend error: Model is not an embedding model with SPLADE pooling",
        "Backend",
    ),
]


@pytest.mark.parametrize("path,body,status,message,error_type", ERROR_CASES)
def test_errors(reranker_server, path, body, status, message, error_type):
    assert_tei_error(post(reranker_server("bert"), path, body), status, message, error_type)


def test_one_empty_side_of_a_pair_is_fine(reranker_server, cross_encoders):
    answer = rerank(reranker_server("bert"), query="", texts=["a passage"], raw_scores=True)
    expected = reference_scores(cross_encoders("bert"), "", ["a passage"], raw=True)
    np.testing.assert_allclose(answer[0]["score"], expected[0], rtol=1e-5, atol=1e-6)


def test_rerank_on_a_classifier_is_424(classifier_server):
    for path, body in (
        ("/rerank", {"query": QUERY, "texts": ["a"]}),
        ("/v1/rerank", {"query": QUERY, "documents": ["a"]}),
    ):
        response = post(classifier_server, path, body)
        assert response.status_code == 424, response.text
        assert response.json() == {
            "error": "Backend error: model is not a re-ranker model",
            "error_type": "Backend",
        }


def test_each_pair_takes_one_permit(reranker_server):
    server = reranker_server("xlm-roberta")
    for path, key in (("/rerank", "texts"), ("/v1/rerank", "documents")):
        too_many = post(server, path, {"query": QUERY, key: ["passage"] * (RERANK_PERMITS + 1)})
        assert too_many.status_code == 429, too_many.text
        assert too_many.json() == {"error": "Model is overloaded", "error_type": "Overloaded"}
        # Exactly as many pairs as permits fit, and the refused request returned what it took.
        just_enough = post(server, path, {"query": QUERY, key: ["passage"] * RERANK_PERMITS})
        assert just_enough.status_code == 200, just_enough.text


def test_cohere_client_v2_reranks_through_v2_rerank(reranker_server, cross_encoders):
    """The real `cohere.ClientV2` against /v2/rerank: Cohere's v2 shape, CrossEncoder's scores."""
    import cohere

    server = reranker_server("bert")
    client = cohere.ClientV2(api_key="unused", base_url=server.url)
    answer = client.rerank(model="rerank-v3.5", query=QUERY, documents=TEXTS, top_n=3)
    want = reference_scores(cross_encoders("bert"), QUERY, TEXTS)
    assert [r.index for r in answer.results] == expected_ranking(want)[:3]
    np.testing.assert_allclose([r.relevance_score for r in answer.results], want[expected_ranking(want)[:3]], rtol=1e-5)
    assert answer.id and answer.meta.api_version.version == "2"
    # long documents are truncated to the model's window, as Cohere does, not refused
    long = client.rerank(model="m", query=QUERY, documents=[LONG_TEXT, "short"], max_tokens_per_doc=64)
    assert len(long.results) == 2


@pytest.mark.parametrize(
    "body, error_type",
    [
        ({"query": QUERY, "documents": []}, "Empty"),
        ({"query": QUERY, "documents": ["a"], "top_n": 0}, "Validation"),
        ({"query": QUERY, "documents": ["a"], "max_tokens_per_doc": 0}, "Validation"),
        ({"query": QUERY, "documents": [{"text": "a"}]}, "Validation"),  # v2 documents are strings
        ({"documents": ["a"]}, "Validation"),
    ],
)
def test_v2_rerank_refuses_bad_requests_with_teis_body(reranker_server, body, error_type):
    response = post(reranker_server("bert"), "/v2/rerank", body)
    assert response.status_code == (400 if error_type == "Empty" else 422), response.text
    assert response.json()["error_type"] == error_type
