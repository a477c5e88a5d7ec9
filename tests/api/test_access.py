"""--api-key, --cors-allow-origin and --prometheus-port on a real server."""

from __future__ import annotations

import pytest
import requests

from tests.server import free_port

KEY = "s3cret-key"
PROM_PORT = free_port()


@pytest.fixture(scope="module")
def guarded(server_pool):
    return server_pool(
        "--api-key", KEY, "--cors-allow-origin", "http://allowed.example",
        "--prometheus-port", str(PROM_PORT),
    )


@pytest.mark.parametrize(
    "path,body",
    [
        ("/embed", {"inputs": "x"}),
        ("/v1/embeddings", {"input": "x"}),
        ("/tokenize", {"inputs": "x"}),
        ("/", {"inputs": "x"}),
        ("/similarity", {"inputs": {"source_sentence": "a", "sentences": ["b"]}}),
    ],
)
def test_inference_routes_need_the_key(guarded, path, body):
    assert requests.post(guarded.url + path, json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert requests.post(guarded.url + path, json=body, headers=wrong).status_code == 401
    right = {"Authorization": f"Bearer {KEY}"}
    assert requests.post(guarded.url + path, json=body, headers=right).status_code == 200


def test_info_needs_the_key_probes_do_not(guarded):
    assert requests.get(guarded.url + "/info").status_code == 401
    for path in ("/health", "/ping", "/metrics", "/docs", "/openapi.json"):
        assert requests.get(guarded.url + path).status_code == 200, path


def test_cors_allows_only_the_configured_origin(guarded):
    preflight = requests.options(
        guarded.url + "/embed",
        headers={
            "Origin": "http://allowed.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://allowed.example"
    other = requests.options(
        guarded.url + "/embed",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert other.headers.get("access-control-allow-origin") != "http://evil.example"


def test_prometheus_port_serves_tei_metrics(guarded):
    requests.post(guarded.url + "/embed", json={"inputs": "x"}, headers={"Authorization": f"Bearer {KEY}"})
    text = requests.get(f"http://127.0.0.1:{PROM_PORT}/metrics").text
    assert "te_request_count" in text
