"""The typed BentoML API methods (tei_bento/bento_api.py) through BentoML's own clients.

One real `bentoml serve service:TEIBento` process serves four models (the session's shared
server); `bentoml.SyncHTTPClient` and `bentoml.AsyncHTTPClient` call every method, and
every number is compared with sentence-transformers / CrossEncoder / transformers on the
same folder.
"""

from __future__ import annotations

import asyncio
import time

import bentoml
import numpy as np
import pytest
import requests
from bentoml.exceptions import BentoMLException

from tests.api.test_predict import Reference
from tests.api.test_rerank import reference_scores
from tests.api.test_splade import assert_same_sparse, reference
from tests.conftest import FOUR_MODELS_RERANK_PERMITS
from tests.metrics import delta, scrape
from tests.reference import assert_same_vectors, without_normalize

TEXTS = ["What is Deep Learning?", "The cat sat on the mat.", "Paris is the capital of France"]
QUERY = "where did the cat sit"
DOCUMENTS = ["the cat sat on the mat", "a dog ran in the park", "weather report for today"]
METHODS = ("embed", "embed_batch", "embed_sparse", "predict", "rerank", "similarity", "tokenize")


@pytest.fixture(scope="module")
def server(bentoml_four_models):
    return bentoml_four_models


@pytest.fixture(scope="module")
def client(server):
    with bentoml.SyncHTTPClient(server.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def cross_encoder(reranker_folder):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(reranker_folder("bert")), device="cpu")


@pytest.fixture(scope="module")
def sparse_encoder(splade_folder):
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    return SparseEncoder(modules=[MLMTransformer(str(splade_folder)), SpladePooling("max", "relu")], device="cpu")


def raised(call, *args, **kwargs) -> BentoMLException:
    with pytest.raises(BentoMLException) as caught:
        call(*args, **kwargs)
    return caught.value


# -- the methods are BentoML's, beside TEI's routes ----------------------------------------


def test_schema_lists_every_method_under_bento_not_over_tei_routes(server, client):
    schema = requests.get(server.url + "/schema.json", timeout=10).json()
    routes = {api["name"]: api["route"] for api in schema["routes"]}
    assert routes == {name: f"/bento/{name}" for name in METHODS}
    assert set(client.endpoints) == set(METHODS)
    embed = next(api for api in schema["routes"] if api["name"] == "embed")["input"]["properties"]
    assert {"inputs", "normalize", "truncate", "truncation_direction", "prompt_name", "dimensions", "model"} <= set(embed)
    assert embed["inputs"]["oneOf"] == [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
    # TEI's own /embed is still the mounted app's: a bare list, TEI's body.
    tei = requests.post(server.url + "/embed", json={"inputs": "x"}, timeout=30)
    assert tei.status_code == 200 and len(tei.json()) == 1 and "x-compute-time" in tei.headers


def test_openapi_shows_the_methods(server):
    paths = requests.get(server.url + "/docs.json", timeout=10).json()["paths"]
    assert {f"/bento/{name}" for name in METHODS} <= set(paths)
    assert {"/embed", "/rerank", "/predict", "/v1/embeddings"} <= set(paths)  # TEI's, beside them


# -- every method, SyncHTTPClient, against the references ----------------------------------


def test_embed_equals_sentence_transformers(client, minilm_reference):
    assert_same_vectors(client.embed(inputs=TEXTS), minilm_reference.encode(TEXTS))
    assert_same_vectors(client.embed(inputs=TEXTS[0]), minilm_reference.encode(TEXTS[:1]))
    raw = client.embed(inputs=TEXTS, normalize=False)
    np.testing.assert_allclose(raw, without_normalize(minilm_reference).encode(TEXTS), atol=1e-4)


def test_embed_dimensions_and_model_name(client, minilm_reference):
    got = np.asarray(client.embed(inputs=TEXTS, dimensions=64, model="minilm"))
    full = minilm_reference.encode(TEXTS, normalize_embeddings=False)[:, :64]
    expected = full / np.linalg.norm(full, axis=1, keepdims=True)
    assert got.shape == (3, 64)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_embed_binary_equals_quantize_embeddings(client, minilm_reference):
    from sentence_transformers.util.quantization import quantize_embeddings

    got = np.asarray(client.embed(inputs=TEXTS, embedding_type="ubinary"), dtype=np.int64)
    assert np.array_equal(got, quantize_embeddings(minilm_reference.encode(TEXTS), "ubinary"))


def test_embed_sparse_equals_the_sparse_encoder(client, sparse_encoder):
    got = client.embed_sparse(inputs=TEXTS)
    for answer, expected in zip(got, reference(sparse_encoder, TEXTS)):
        assert_same_sparse(answer, expected)


def test_rerank_answers_the_documents_form(client, cross_encoder):
    expected = reference_scores(cross_encoder, QUERY, DOCUMENTS)
    body = client.rerank(query=QUERY, documents=DOCUMENTS, top_n=2, return_documents=True)
    assert body["model"] == "reranker" and body["usage"]["total_tokens"] > 0
    assert [r["index"] for r in body["results"]] == list(np.argsort(-expected)[:2])
    for result in body["results"]:
        assert result["relevance_score"] == pytest.approx(expected[result["index"]], abs=1e-5)
        assert result["document"] == {"text": DOCUMENTS[result["index"]]}
    raw = client.rerank(query=QUERY, documents=DOCUMENTS, raw_scores=True)["results"]
    raw_expected = reference_scores(cross_encoder, QUERY, DOCUMENTS, raw=True)
    assert {r["index"]: pytest.approx(raw_expected[r["index"]], abs=1e-5) for r in raw} == {
        r["index"]: r["relevance_score"] for r in raw
    }
    assert all("document" not in r for r in raw)


def test_predict_single_pair_and_batch(client, classifier_folder):
    ref = Reference(classifier_folder)

    def same(got, inputs):
        expected = ref.answer(inputs)
        assert [g["label"] for g in got] == [e["label"] for e in expected]
        np.testing.assert_allclose([g["score"] for g in got], [e["score"] for e in expected], atol=1e-5)

    same(client.predict(inputs=TEXTS[0]), [TEXTS[0]])
    same(client.predict(inputs=[QUERY, DOCUMENTS[0]], model="classifier"), [QUERY, DOCUMENTS[0]])
    batch = client.predict(inputs=[[TEXTS[1]], [QUERY, DOCUMENTS[1]]])
    assert len(batch) == 2
    same(batch[0], [TEXTS[1]])
    same(batch[1], [QUERY, DOCUMENTS[1]])


def test_predict_on_the_reranker_when_named(client, cross_encoder):
    got = client.predict(inputs=[QUERY, DOCUMENTS[0]], model="reranker")
    assert got[0]["score"] == pytest.approx(reference_scores(cross_encoder, QUERY, DOCUMENTS[:1])[0], abs=1e-5)


def test_similarity_is_cosine_of_sentence_transformers(client, minilm_reference):
    got = client.similarity(source_sentence=QUERY, sentences=DOCUMENTS)
    vectors = minilm_reference.encode([QUERY, *DOCUMENTS])
    np.testing.assert_allclose(got, vectors[1:] @ vectors[0], atol=1e-5)


def test_tokenize_uses_the_named_models_tokenizer(client, classifier_folder):
    from transformers import AutoTokenizer

    tokens = client.tokenize(inputs=["the cat sat", "Paris"], model="classifier")
    tokenizer = AutoTokenizer.from_pretrained(str(classifier_folder))
    assert [[t["id"] for t in row] for row in tokens] == tokenizer(["the cat sat", "Paris"])["input_ids"]
    assert tokens[0][0]["special"] is True and tokens[0][1]["start"] == 0


# -- AsyncHTTPClient; concurrent calls share forward passes ---------------------------------


def test_async_client_calls_every_method(server, minilm_reference, cross_encoder):
    async def calls():
        async with bentoml.AsyncHTTPClient(server.url, timeout=120) as client:
            return await asyncio.gather(
                client.embed(inputs=TEXTS),
                client.embed_sparse(inputs=TEXTS[0]),
                client.rerank(query=QUERY, documents=DOCUMENTS),
                client.predict(inputs=TEXTS[0]),
                client.similarity(source_sentence=QUERY, sentences=DOCUMENTS),
                client.tokenize(inputs=TEXTS[0]),
            )

    vectors, sparse, ranked, labels, similarity, tokens = asyncio.run(calls())
    assert_same_vectors(vectors, minilm_reference.encode(TEXTS))
    assert len(sparse) == 1 and sparse[0]
    expected = reference_scores(cross_encoder, QUERY, DOCUMENTS)
    assert {r["index"]: round(r["relevance_score"], 5) for r in ranked["results"]} == {
        i: round(float(e), 5) for i, e in enumerate(expected)
    }
    assert {label["label"] for label in labels} == {"sad", "calm", "happy"}
    assert len(similarity) == len(DOCUMENTS) and tokens[0][0]["special"]


def test_concurrent_one_text_calls_share_forward_passes(server, minilm_reference):
    """128 concurrent single-text `embed` calls: each answer is its own text's vector, and
    the batcher ran them in fewer forward passes than calls (te_batch_next_size)."""
    texts = [f"concurrent text number {i} about a topic" for i in range(128)]

    async def calls():
        async with bentoml.AsyncHTTPClient(server.url, timeout=120) as client:
            return await asyncio.gather(*(client.embed(inputs=text) for text in texts))

    before = scrape(server)
    answers = asyncio.run(calls())
    after = scrape(server)
    assert_same_vectors([a[0] for a in answers], minilm_reference.encode(texts))
    inputs = delta(before, after, "te_batch_next_size_sum", model="minilm")
    batches = delta(before, after, "te_batch_next_size_count", model="minilm")
    assert inputs == 128 and batches < 128, (inputs, batches)
    assert delta(before, after, "te_request_success_total", model="minilm") == 128


# -- TEI's errors as BentoML errors ---------------------------------------------------------


def test_unknown_model_is_not_found(client):
    error = raised(client.embed, inputs="x", model="nope")
    assert error.error_code == 404 and "The model `nope` does not exist" in str(error)


def test_wrong_model_type_is_424(client):
    error = raised(client.predict, inputs="x", model="minilm")
    assert error.error_code == 424 and "Backend error: Model is not a classifier model" in str(error)
    assert raised(client.embed_sparse, inputs="x", model="minilm").error_code == 424


def test_tei_validation_is_422_with_teis_message(client):
    error = raised(client.embed, inputs=["a"] * 17)
    assert error.error_code == 422 and "batch size 17 > maximum allowed batch size 16" in str(error)
    error = raised(client.predict, inputs=[["a", "b", "c"]])
    assert error.error_code == 422 and "invalid length 3" in str(error)


def test_empty_input_is_400_as_in_tei(client):
    error = raised(client.embed, inputs=[])
    assert error.error_code == 400 and "`inputs` cannot be empty" in str(error)
    assert raised(client.similarity, source_sentence="a", sentences=[]).error_code == 400


def test_wrong_types_are_bentomls_400(client):
    """Parameters that fail the typed signature are refused by BentoML itself (its 400)."""
    error = raised(client.embed, inputs=["x"], truncation_direction="up")
    assert error.error_code == 400 and "truncation_direction" in str(error)


def test_overloaded_is_429_and_counted(server, client):
    before = scrape(server)
    documents = [f"document {i}" for i in range(FOUR_MODELS_RERANK_PERMITS + 1)]
    error = raised(client.rerank, query=QUERY, documents=documents)
    assert error.error_code == 429 and "Model is overloaded" in str(error)
    after = scrape(server)
    assert delta(before, after, "te_request_failure_total", err="overloaded", model="reranker") == 1
    assert len(client.rerank(query=QUERY, documents=documents[:2])["results"]) == 2  # serves after


# -- the bulk task ----------------------------------------------------------------------------


def sync_task_client(url: str) -> bentoml.SyncHTTPClient:
    """BentoML 1.4.39-1.4.40's SyncHTTPClient raises AttributeError ('_opened_files') after
    a task's submit has gone through; giving it the attribute it reads is the workaround."""
    client = bentoml.SyncHTTPClient(url, timeout=120)
    if not hasattr(client, "_opened_files"):
        client._opened_files = []
    return client


def test_embed_batch_full_life_beside_interactive_calls(server, minilm_reference):
    """2,400 texts (150x max_client_batch_size) as a task: the id comes back at once, the
    status is in progress while interactive calls are answered, then completed; the vectors
    equal sentence-transformers."""
    texts = [f"passage {i}: the quick brown fox number {i % 97} jumps" for i in range(2400)]
    with sync_task_client(server.url) as client:
        started = time.monotonic()
        task = client.embed_batch.submit(inputs=texts)
        assert time.monotonic() - started < 5 and task.id
        interactive = []
        while task.get_status().value == "in_progress" and len(interactive) < 5:
            began = time.monotonic()
            vector = client.embed(inputs=TEXTS[0])
            interactive.append((time.monotonic() - began, task.get_status().value))
            assert_same_vectors(vector, minilm_reference.encode(TEXTS[:1]))
        # at least one interactive call was answered while the task was still running
        assert any(status == "in_progress" for _, status in interactive), interactive
        assert finished(task, timeout=180) == "completed"
        vectors = task.get()
    assert len(vectors) == len(texts)
    assert_same_vectors(vectors, minilm_reference.encode(texts))


def test_embed_batch_with_the_async_client_and_a_failing_task(server, minilm_reference):
    async def life():
        async with bentoml.AsyncHTTPClient(server.url, timeout=120) as client:
            ok = await client.embed_batch.submit(inputs=TEXTS, normalize=False, model="minilm")
            bad = await client.embed_batch.submit(inputs=TEXTS, model="classifier")
            for task in (ok, bad):
                while (await task.get_status()).value == "in_progress":
                    await asyncio.sleep(0.1)
            failed = None
            try:
                await bad.get()
            except BentoMLException as exc:
                failed = exc
            return await ok.get(), (await bad.get_status()).value, failed

    vectors, bad_status, failed = asyncio.run(life())
    np.testing.assert_allclose(vectors, without_normalize(minilm_reference).encode(TEXTS), atol=1e-4)
    assert bad_status == "failed"
    assert failed is not None and "Model is not an embedding model" in str(failed)


def finished(task, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while task.get_status().value == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.1)
    return task.get_status().value


def test_embed_batch_limits(server):
    """BentoML validates a task's input when it runs, not at submit: an empty or too-large
    batch is a failed task whose result is BentoML's 400 naming the limit."""
    with sync_task_client(server.url) as client:
        for inputs, limit in (([], "at least 1 item"), (["x"] * 100_001, "at most 100000 items")):
            task = client.embed_batch.submit(inputs=inputs)
            assert finished(task) == "failed"
            error = raised(task.get)
            assert error.error_code == 400 and limit in str(error), str(error)


def test_a_direct_python_call_gets_plain_values():
    """Outside a request (a notebook, a unit test) `answer` hands back the value itself; only
    a JSON request being served gets pre-encoded JSON."""
    from tei_bento.bento_api import answer

    assert answer(np.asarray([[1.0, 2.0]], dtype=np.float32)) == [[1.0, 2.0]]
    assert answer({"results": []}) == {"results": []}


def test_a_cancelled_task_frees_its_permits_and_queued_inputs_at_once(server, minilm_reference):
    """BentoML's own server only marks a cancelled task; tei-bento's task reads the mark and
    stops: its permits are free (/metrics `te_permits_in_use`) and no more of its batches
    run within a second of the cancel, while interactive calls keep their answers."""
    from tests.metrics import total

    texts = [f"passage {i}: a long enough text about the number {i} and its neighbours " * 4 for i in range(8_000)]
    with sync_task_client(server.url) as client:
        task = client.embed_batch.submit(inputs=texts, model="minilm")
        deadline = time.monotonic() + 60
        while total(scrape(server), "te_permits_in_use", model="minilm") == 0:
            assert time.monotonic() < deadline, "the task never took a permit"
            time.sleep(0.05)
        cancel = requests.put(server.url + "/bento/embed_batch/cancel", params={"task_id": task.id}, timeout=30)
        assert cancel.status_code in (200, 400), cancel.text  # BentoML's local server answers 400
        cancelled_at = time.monotonic()
        while total(scrape(server), "te_permits_in_use", model="minilm") != 0:
            assert time.monotonic() - cancelled_at < 3, "the cancelled task kept its permits"
            time.sleep(0.05)
        batches = total(scrape(server), "te_batch_next_size_count", model="minilm")
        time.sleep(1.0)
        assert total(scrape(server), "te_batch_next_size_count", model="minilm") == batches  # nothing left queued
        assert finished(task, timeout=30) in ("canceled", "failed")
        assert_same_vectors(client.embed(inputs=TEXTS[0]), minilm_reference.encode(TEXTS[:1]))
