"""TEI's gRPC API through a real `tei-bento serve --grpc-port` process serving four models,
with stubs generated from the committed proto; every vector, score and label is compared
with sentence-transformers / transformers, every error code with TEI's."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest

from tei_bento.grpc_api import tei_pb2 as pb
from tei_bento.grpc_api import tei_pb2_grpc as rpc
from tests.api.test_predict import Reference
from tests.api.test_rerank import reference_scores
from tests.api.test_splade import assert_same_sparse, reference
from tests.conftest import FOUR_MODELS_RERANK_PERMITS
from tests.reference import assert_same_vectors, without_normalize
from tests.server import free_port

TEXTS = ["What is Deep Learning?", "The cat sat on the mat.", "Paris is the capital of France"]
QUERY = "where did the cat sit"
DOCUMENTS = ["the cat sat on the mat", "a dog ran in the park", "weather report for today"]


@pytest.fixture(scope="module")
def sparse_encoder(splade_folder):
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    return SparseEncoder(modules=[MLMTransformer(str(splade_folder)), SpladePooling("max", "relu")], device="cpu")


@pytest.fixture(scope="module")
def cross_encoder(reranker_folder):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(reranker_folder("bert")), device="cpu")


def code_of(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value.code(), caught.value.details()


def model(name: str) -> tuple[tuple[str, str]]:
    return (("model", name),)


def test_info_is_the_first_model(channel):
    info = rpc.InfoStub(channel).Info(pb.InfoRequest())
    assert info.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert info.model_type == pb.MODEL_TYPE_EMBEDDING and info.max_client_batch_size == 16
    classifier = rpc.InfoStub(channel).Info(pb.InfoRequest(), metadata=model("classifier"))
    assert classifier.model_type == pb.MODEL_TYPE_CLASSIFIER


def test_embed_unary_with_teis_metadata(channel, minilm_reference):
    answer, call = rpc.EmbedStub(channel).Embed.with_call(pb.EmbedRequest(inputs=TEXTS[0]))
    assert_same_vectors([list(answer.embeddings)], minilm_reference.encode(TEXTS[:1]))
    headers = dict(call.initial_metadata())
    tokens = len(minilm_reference.tokenize(TEXTS[:1])["input_ids"][0])
    assert headers["x-compute-tokens"] == str(tokens) == str(answer.metadata.compute_tokens)
    assert {"x-compute-time", "x-queue-time", "x-inference-time", "x-tokenization-time"} <= set(headers)
    assert answer.metadata.compute_chars == len(TEXTS[0]) and answer.metadata.total_time_ns > 0


def test_embed_options(channel, minilm_reference):
    stub = rpc.EmbedStub(channel)
    raw = stub.Embed(pb.EmbedRequest(inputs=TEXTS[1], normalize=False))
    expected = without_normalize(minilm_reference).encode(TEXTS[1:2])
    np.testing.assert_allclose([list(raw.embeddings)], expected, atol=1e-4)
    small = stub.Embed(pb.EmbedRequest(inputs=TEXTS[1], dimensions=32))
    assert len(small.embeddings) == 32 and np.linalg.norm(small.embeddings) == pytest.approx(1, abs=1e-5)


def test_embed_stream_answers_in_order(channel, minilm_reference):
    texts = [f"stream text {i} about topic {i % 7}" for i in range(200)]
    answers = list(rpc.EmbedStub(channel).EmbedStream(iter(pb.EmbedRequest(inputs=t) for t in texts)))
    assert_same_vectors([list(a.embeddings) for a in answers], minilm_reference.encode(texts))


def test_a_stream_of_1000_is_batched_like_concurrent_calls(served, channel, minilm_reference):
    """Its messages reach the batcher as they arrive: far fewer forward passes than inputs,
    the answers in order, and HTTP's metrics count them."""
    from tests.metrics import delta, scrape

    texts = [f"message {i} of a long stream" for i in range(1000)]
    before = scrape(served[0])
    answers = list(rpc.EmbedStub(channel).EmbedStream(iter(pb.EmbedRequest(inputs=t) for t in texts)))
    after = scrape(served[0])
    assert_same_vectors([list(a.embeddings) for a in answers], minilm_reference.encode(texts))
    assert delta(before, after, "te_batch_next_size_sum", model="minilm") == 1000
    assert delta(before, after, "te_batch_next_size_count", model="minilm") < 200
    assert delta(before, after, "te_request_success_total", model="minilm") == 1000


def test_embed_sparse_and_its_stream(channel, sparse_encoder):
    stub = rpc.EmbedStub(channel)
    expected = reference(sparse_encoder, TEXTS)
    unary = stub.EmbedSparse(pb.EmbedSparseRequest(inputs=TEXTS[0]))
    streamed = list(stub.EmbedSparseStream(iter(pb.EmbedSparseRequest(inputs=t) for t in TEXTS)))
    for answer, vector in zip([unary, *streamed], [expected[0], *expected]):
        assert_same_sparse([{"index": v.index, "value": v.value} for v in answer.sparse_embeddings], vector)


def test_embed_all_is_every_token_state(channel, minilm_reference):
    features = minilm_reference.tokenize(TEXTS[:1])
    states = minilm_reference[0](features)["token_embeddings"].detach().numpy()[0]
    answer = rpc.EmbedStub(channel).EmbedAll(pb.EmbedAllRequest(inputs=TEXTS[0]))
    np.testing.assert_allclose([list(t.embeddings) for t in answer.token_embeddings], states, atol=1e-4)
    streamed = list(rpc.EmbedStub(channel).EmbedAllStream(iter([pb.EmbedAllRequest(inputs=TEXTS[0])] * 3)))
    assert len(streamed) == 3 and len(streamed[2].token_embeddings) == len(states)


def test_predict_single_pair_and_streams(channel, classifier_folder):
    ref = Reference(classifier_folder)
    stub = rpc.PredictStub(channel)

    def same(answer, inputs):
        expected = ref.answer(inputs)
        assert [p.label for p in answer.predictions] == [e["label"] for e in expected]
        np.testing.assert_allclose([p.score for p in answer.predictions], [e["score"] for e in expected], atol=1e-5)

    same(stub.Predict(pb.PredictRequest(inputs=TEXTS[0])), [TEXTS[0]])
    same(stub.PredictPair(pb.PredictPairRequest(inputs=[QUERY, DOCUMENTS[0]])), [QUERY, DOCUMENTS[0]])
    for answer, text in zip(stub.PredictStream(iter(pb.PredictRequest(inputs=t) for t in TEXTS)), TEXTS):
        same(answer, [text])
    pairs = [[QUERY, d] for d in DOCUMENTS]
    for answer, pair in zip(stub.PredictPairStream(iter(pb.PredictPairRequest(inputs=p) for p in pairs)), pairs):
        same(answer, pair)
    code, details = code_of(stub.PredictPair, pb.PredictPairRequest(inputs=["a", "b", "c"]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "two elements" in details


def test_rerank_and_its_stream(channel, cross_encoder):
    expected = reference_scores(cross_encoder, QUERY, DOCUMENTS)
    stub = rpc.RerankStub(channel)
    answer = stub.Rerank(pb.RerankRequest(query=QUERY, texts=DOCUMENTS, return_text=True))
    assert [r.index for r in answer.ranks] == list(np.argsort(-expected))
    for rank in answer.ranks:
        assert rank.score == pytest.approx(expected[rank.index], abs=1e-5)
        assert rank.text == DOCUMENTS[rank.index]
    streamed = stub.RerankStream(iter(pb.RerankStreamRequest(query=QUERY, text=d) for d in DOCUMENTS))
    assert [(r.index, round(r.score, 5)) for r in streamed.ranks] == [
        (r.index, round(r.score, 5)) for r in answer.ranks
    ]
    assert not any(r.HasField("text") for r in streamed.ranks)


def test_tokenize_and_decode(channel, classifier_folder):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(classifier_folder))
    stub = rpc.TokenizeStub(channel)
    encoded = stub.Tokenize(pb.EncodeRequest(inputs="the cat sat", add_special_tokens=True), metadata=model("classifier"))
    ids = [t.id for t in encoded.tokens]
    assert ids == tokenizer("the cat sat")["input_ids"]
    assert encoded.tokens[0].special and not encoded.tokens[0].HasField("start")
    assert (encoded.tokens[1].start, encoded.tokens[1].stop) == (0, 3)
    streamed = list(stub.TokenizeStream(iter(pb.EncodeRequest(inputs=t, add_special_tokens=True) for t in TEXTS)))
    assert len(streamed) == 3
    decoded = stub.Decode(pb.DecodeRequest(ids=ids, skip_special_tokens=True), metadata=model("classifier"))
    assert decoded.text == tokenizer.decode(ids, skip_special_tokens=True)
    texts = list(stub.DecodeStream(iter([pb.DecodeRequest(ids=ids, skip_special_tokens=True)] * 2), metadata=model("classifier")))
    assert [t.text for t in texts] == [decoded.text] * 2


def test_teis_status_codes(channel):
    embed, predict = rpc.EmbedStub(channel), rpc.PredictStub(channel)
    assert code_of(predict.Predict, pb.PredictRequest(inputs="x"), metadata=model("minilm")) == (
        grpc.StatusCode.FAILED_PRECONDITION, "Backend error: Model is not a classifier model"
    )  # fmt: skip
    assert code_of(embed.Embed, pb.EmbedRequest(inputs="")) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Input validation error: `inputs` cannot be empty"
    )  # fmt: skip
    code, details = code_of(embed.Embed, pb.EmbedRequest(inputs="x"), metadata=model("nope"))
    assert code == grpc.StatusCode.NOT_FOUND and "The model `nope` does not exist" in details
    code, _ = code_of(lambda: list(embed.EmbedStream(iter([pb.EmbedRequest(inputs="x")]), metadata=model("nope"))))
    assert code == grpc.StatusCode.NOT_FOUND


def test_an_over_limit_rerank_is_resource_exhausted_and_the_server_serves_after(channel):
    stub = rpc.RerankStub(channel)
    texts = [f"document {i}" for i in range(FOUR_MODELS_RERANK_PERMITS + 1)]
    assert code_of(stub.Rerank, pb.RerankRequest(query=QUERY, texts=texts)) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED, "Model is overloaded"
    )  # fmt: skip
    assert len(stub.Rerank(pb.RerankRequest(query=QUERY, texts=texts[:2])).ranks) == 2


def test_health_and_reflection(channel):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    services = ("", "tei.v1.Info", "tei.v1.Embed", "tei.v1.Rerank", "tei.v1.Predict", "tei.v1.Tokenize")
    for service in (*services, "minilm", "splade", "reranker", "classifier"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
        assert status == health_pb2.HealthCheckResponse.SERVING, service
    assert code_of(health.Check, health_pb2.HealthCheckRequest(service="nope"))[0] == grpc.StatusCode.NOT_FOUND
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    [answer] = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for s in answer.list_services_response.service}
    assert {"tei.v1.Info", "tei.v1.Embed", "tei.v1.Predict", "tei.v1.Rerank", "tei.v1.Tokenize"} <= names
    assert "grpc.health.v1.Health" in names


def test_api_key_and_payload_limit(server_pool):
    """--api-key is `authorization: Bearer` metadata (health stays open); --payload-limit is
    the largest message a call may send."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = free_port()
    server_pool("--api-key", "s3cret", "--payload-limit", "20000", "--grpc-port", str(port))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = rpc.EmbedStub(channel)
        assert code_of(stub.Embed, pb.EmbedRequest(inputs="x")) == (
            grpc.StatusCode.UNAUTHENTICATED, "No valid auth token"
        )  # fmt: skip
        wrong = (("authorization", "Bearer nope"),)
        assert code_of(stub.Embed, pb.EmbedRequest(inputs="x"), metadata=wrong)[0] == grpc.StatusCode.UNAUTHENTICATED
        key = (("authorization", "Bearer s3cret"),)
        assert len(stub.Embed(pb.EmbedRequest(inputs="x"), metadata=key).embeddings) == 384
        streamed = list(stub.EmbedStream(iter([pb.EmbedRequest(inputs="x")] * 2), metadata=key))
        assert len(streamed) == 2
        code, _ = code_of(stub.Embed, pb.EmbedRequest(inputs="word " * 5000), metadata=key)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert len(stub.Embed(pb.EmbedRequest(inputs="x"), metadata=key).embeddings) == 384
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING


def test_a_cancelled_stream_frees_its_permits_and_queued_inputs(server_pool):
    """GRPC_MAX_PARALLEL_STREAM_REQUESTS bounds what one stream has in flight; cancelling the
    stream cancels those messages: they are not computed, and their permits are free at once."""
    import requests

    from tests.api.test_faults import until
    from tests.metrics import scrape, total

    port = free_port()
    server = server_pool(
        "--max-concurrent-requests", "32", "--max-batch-tokens", "2048", "--grpc-port", str(port),
        env={"GRPC_MAX_PARALLEL_STREAM_REQUESTS": "64"},
    )  # fmt: skip
    long_text = "a fairly long sentence about many different things " * 20
    before = scrape(server)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = rpc.EmbedStub(channel).EmbedStream(iter(pb.EmbedRequest(inputs=f"{long_text}{i}") for i in range(400)))
        answers = [next(call) for _ in range(3)]
        call.cancel()
    assert all(len(a.embeddings) == 384 for a in answers)
    time.sleep(1.0)  # the cancellation reaches the server
    started = total(scrape(server), "te_embed_count_total") - total(before, "te_embed_count_total")
    # every permit is free again: one request for all 32 is answered
    until(lambda: requests.post(server.url + "/embed", json={"inputs": ["x"] * 32}, timeout=30).status_code == 200, 10)
    computed = total(scrape(server), "te_batch_next_size_sum") - total(before, "te_batch_next_size_sum") - 32
    # the stream's window, not its 400 messages: at most 64 in flight beyond those computed
    assert 3 <= started <= computed + 64 < 400
    assert computed < 64  # not the whole window: what was queued at the cancel was dropped
