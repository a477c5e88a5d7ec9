"""max_concurrent_requests: a burst past it answers only 200s and 429s, then all is normal."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

LONG = "The quick brown fox jumps over the lazy dog. " * 25


@pytest.fixture(scope="module")
def small_server(server_pool):
    return server_pool("--max-concurrent-requests", "2", "--max-batch-tokens", "1024")


def test_burst_answers_only_200_and_429(small_server):
    def call(i: int) -> requests.Response:
        return requests.post(
            small_server.url + "/embed", json={"inputs": [LONG + str(i), LONG]}, timeout=120
        )

    with ThreadPoolExecutor(24) as pool:
        responses = list(pool.map(call, range(48)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert 200 in statuses and 429 in statuses, statuses
    overloaded = next(r for r in responses if r.status_code == 429)
    assert overloaded.json() == {"error": "Model is overloaded", "error_type": "Overloaded"}
    # Every permit came back: a request needing all of them succeeds, more than that is refused.
    assert requests.post(small_server.url + "/embed", json={"inputs": ["a", "b"]}).status_code == 200
    refused = requests.post(small_server.url + "/embed", json={"inputs": ["a", "b", "c"]})
    assert refused.status_code == 429


def test_info_reports_the_limits(small_server, minilm_reference):
    info = requests.get(small_server.url + "/info").json()
    assert info["max_concurrent_requests"] == 2
    assert info["max_batch_tokens"] == 1024
    assert info["max_input_length"] == minilm_reference.max_seq_length


PERMITS = 8


@pytest.fixture(scope="module")
def http_and_grpc(server_pool):
    """(server, gRPC port): `--max-concurrent-requests 8` on both doors of one process."""
    from tests.server import free_port

    port = free_port()
    server = server_pool("--max-concurrent-requests", str(PERMITS), "--grpc-port", str(port))
    return server, port


def test_a_burst_of_4x_the_permits_on_http_and_grpc_at_once(http_and_grpc, minilm_reference):
    """4 x max_concurrent_requests calls released together, half HTTP and half gRPC, each
    needing two permits: only 200 / 429 and OK / RESOURCE_EXHAUSTED, the answers that got
    through equal sentence-transformers, every permit is free afterwards (/metrics), and
    the server serves after."""
    import threading

    import grpc

    from tei_bento.grpc_api import tei_pb2 as pb
    from tei_bento.grpc_api import tei_pb2_grpc as rpc
    from tests.metrics import scrape, total
    from tests.reference import assert_same_vectors

    server, port = http_and_grpc
    texts = [LONG + "one", LONG + "two"]
    expected = minilm_reference.encode(texts)
    callers = 4 * PERMITS
    start = threading.Barrier(callers)
    outcomes: list[tuple[str, object]] = []
    answered: list[tuple[list[list[float]], object]] = []  # (vectors, what they must equal)

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = rpc.EmbedStub(channel)
        session = requests.Session()

        def over_http() -> None:
            start.wait()
            r = session.post(server.url + "/embed", json={"inputs": texts}, timeout=120)
            outcomes.append(("http", r.status_code))
            if r.status_code == 200:
                answered.append((r.json(), expected))

        def over_grpc() -> None:
            start.wait()
            # two messages on one stream hold two permits at once, as the HTTP call's two texts do
            try:
                answers = list(stub.EmbedStream(iter([pb.EmbedRequest(inputs=t) for t in texts]), timeout=120))
                outcomes.append(("grpc", grpc.StatusCode.OK))
                answered.append(([list(a.embeddings) for a in answers], expected))
            except grpc.RpcError as exc:
                outcomes.append(("grpc", exc.code()))

        def unary_grpc() -> None:
            start.wait()
            try:
                answer = stub.Embed(pb.EmbedRequest(inputs=texts[0]), timeout=120)
                outcomes.append(("grpc", grpc.StatusCode.OK))
                answered.append(([list(answer.embeddings)], expected[:1]))
            except grpc.RpcError as exc:
                outcomes.append(("grpc", exc.code()))

        kinds = [over_http] * (callers // 2) + [over_grpc, unary_grpc] * (callers // 4)
        threads = [threading.Thread(target=kind) for kind in kinds]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        assert not any(thread.is_alive() for thread in threads), "a call hung"
        assert len(outcomes) == callers
        for vectors, want in answered:
            assert_same_vectors(vectors, want)
        http_codes = {code for side, code in outcomes if side == "http"}
        grpc_codes = {code for side, code in outcomes if side == "grpc"}
        assert http_codes <= {200, 429}, outcomes
        assert grpc_codes <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, outcomes
        assert 429 in http_codes or grpc.StatusCode.RESOURCE_EXHAUSTED in grpc_codes, outcomes  # it was a burst
        assert 200 in http_codes and grpc.StatusCode.OK in grpc_codes, outcomes

        metrics = scrape(server)
        assert total(metrics, "te_permits_total") == PERMITS
        assert total(metrics, "te_permits_in_use") == 0
        answer = stub.Embed(pb.EmbedRequest(inputs="after the burst"), timeout=60)
        assert_same_vectors([list(answer.embeddings)], minilm_reference.encode(["after the burst"]))
    every = session.post(server.url + "/embed", json={"inputs": ["a"] * PERMITS}, timeout=60)
    assert every.status_code == 200  # all eight permits at once: none was kept
