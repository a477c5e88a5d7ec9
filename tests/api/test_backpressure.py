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
