"""`bentoml serve service:TEIBento` serves the same contract; `--arg` takes TEI's names.

The typed BentoML API methods on the same server are tested in tests/test_bento_api.py.
"""

from __future__ import annotations

import pytest
import requests

from tests.reference import assert_same_vectors
from tests.server import bentoml_server


@pytest.fixture(scope="module")
def bento(bentoml_four_models):
    """Four models, as `--arg models=<yaml>` gives them (the session's shared BentoML server)."""
    return bentoml_four_models


def test_bentoml_serves_embeddings(bento, minilm_reference):
    texts = ["BentoML serves this", "and TEI clients do not notice"]
    got = requests.post(bento.url + "/embed", json={"inputs": texts}, timeout=60).json()
    assert_same_vectors(got, minilm_reference.encode(texts))


def test_bentoml_arguments_reach_the_engine(bento):
    info = requests.get(bento.url + "/info").json()
    assert info["max_client_batch_size"] == 16
    assert info["served_model_name"] == "minilm"
    too_many = requests.post(bento.url + "/embed", json={"inputs": ["a"] * 17})
    assert too_many.status_code == 422


def test_bentoml_metrics_include_tei_metrics(bento):
    requests.post(bento.url + "/embed", json={"inputs": "count me"})
    text = requests.get(bento.url + "/metrics").text
    assert "te_request_duration" in text and "te_batch_next_size" in text


def test_bentoml_openai_route(bento, minilm_reference):
    body = requests.post(bento.url + "/v1/embeddings", json={"input": "x", "model": "minilm"}).json()
    assert body["model"] == "minilm" and len(body["data"][0]["embedding"]) == minilm_reference.get_embedding_dimension()


def test_bentoml_serves_several_models_by_name(bento, reranker_folder):
    from sentence_transformers import CrossEncoder

    models = requests.get(bento.url + "/v1/models").json()["data"]
    assert [(m["id"], m["task"]) for m in models] == [
        ("minilm", "embedding"), ("splade", "splade"), ("reranker", "reranker"), ("classifier", "classifier")
    ]  # fmt: skip
    texts = ["a cat on a mat", "stock prices fell"]
    got = requests.post(bento.url + "/rerank", json={"query": "cat", "texts": texts, "model": "reranker"}).json()
    expected = CrossEncoder(str(reranker_folder("bert")), device="cpu").predict([("cat", t) for t in texts])
    assert {r["index"]: round(r["score"], 5) for r in got} == {i: round(float(e), 5) for i, e in enumerate(expected)}


def test_bentoml_readyz_follows_the_engines(bento, models_dir):
    """/readyz is 200 while every model answers; a model that cannot answer makes it 503."""
    from tests.api.test_faults import poison
    from tests.model_factory import build_embedding_model

    assert requests.get(bento.url + "/readyz").status_code == 200
    folder, _ = poison(build_embedding_model(models_dir / "bento-all-nan", "bert"), everything=True)
    broken = bentoml_server("--arg", f"model_id={folder}").start(ready_path="/livez")
    try:
        assert requests.get(broken.url + "/readyz").status_code == 503
        assert requests.get(broken.url + "/health").status_code == 503
    finally:
        broken.stop()


def test_bentoml_serves_teis_grpc_api_too(bento, minilm_reference):
    """`--arg grpc_port=PORT`: the gRPC API runs in the BentoML worker, over its engines."""
    import grpc

    from tei_bento.grpc_api import tei_pb2 as pb
    from tei_bento.grpc_api import tei_pb2_grpc as rpc

    with grpc.insecure_channel(f"127.0.0.1:{bento.grpc_port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        answer = rpc.EmbedStub(channel).Embed(pb.EmbedRequest(inputs="gRPC under BentoML"))
        assert_same_vectors([list(answer.embeddings)], minilm_reference.encode(["gRPC under BentoML"]))
        ranks = rpc.RerankStub(channel).Rerank(pb.RerankRequest(query="q", texts=["a", "b"])).ranks
        assert sorted(r.index for r in ranks) == [0, 1]


def test_a_killed_worker_is_replaced_and_in_flight_calls_fail_fast(minilm_reference):
    """SIGKILL to the BentoML worker with a request in flight: that request gets an error
    (a reset connection or a 5xx), never a hang; BentoML starts a new worker and the
    service answers again with the same vectors."""
    import os
    import signal
    import threading
    import time

    import psutil

    server = bentoml_server().start(ready_path="/readyz")
    try:
        def workers() -> list[psutil.Process]:
            children = psutil.Process(server.process.pid).children(recursive=True)
            return [p for p in children if "_bentoml_impl.worker" in " ".join(p.cmdline())]

        [worker] = workers()
        long_texts = ["words of a long document about many things " * 40 + str(i) for i in range(32)]
        outcome: dict[str, object] = {}

        def in_flight() -> None:
            try:
                outcome["status"] = requests.post(server.url + "/embed", json={"inputs": long_texts}, timeout=60).status_code
            except requests.RequestException as exc:
                outcome["error"] = type(exc).__name__

        for _ in range(3):  # a few long calls, so one is surely in flight at the kill
            thread = threading.Thread(target=in_flight)
            thread.start()
            time.sleep(0.3)
            if thread.is_alive():
                break
        assert thread.is_alive(), "no call stayed in flight long enough to be cut"
        os.kill(worker.pid, signal.SIGKILL)
        thread.join(timeout=90)
        assert not thread.is_alive(), "the in-flight call hung"
        assert "error" in outcome or outcome["status"] >= 500, outcome
        deadline = time.monotonic() + 180
        while True:
            assert time.monotonic() < deadline, f"no new worker answered:\n{server.log()}"
            try:
                if requests.get(server.url + "/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        assert [p.pid for p in workers()] != [worker.pid]
        texts = ["after the worker was replaced"]
        got = requests.post(server.url + "/embed", json={"inputs": texts}, timeout=60).json()
        assert_same_vectors(got, minilm_reference.encode(texts))
    finally:
        server.stop()
