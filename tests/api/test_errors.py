"""TEI's error bodies and status codes, through a real server."""

from __future__ import annotations

import pytest
import requests

LONG = "word " * 400


def post(server, path, body=None, data=None):
    if data is not None:
        return requests.post(server.url + path, data=data, timeout=60)
    return requests.post(server.url + path, json=body, timeout=60)


CASES = [
    ("/embed", {"inputs": ""}, 400, "Empty", "Input validation error: `inputs` cannot be empty"),
    ("/embed", {"inputs": []}, 400, "Empty", "Input validation error: `inputs` cannot be empty"),
    ("/embed", {"inputs": ["a", ""]}, 400, "Empty", "Input validation error: `inputs` cannot be empty"),
    ("/embed", {"inputs": ["a"] * 33}, 422, "Validation", "batch size 33 > maximum allowed batch size 32"),
    (
        "/embed",
        {"inputs": LONG, "truncate": False},
        422,
        "Validation",
        "Input validation error: `inputs` must have less than 256 tokens. Given: 402",
    ),
    ("/embed", {"inputs": "a", "dimensions": 0}, 422, "Validation", "Input validation error: `dimensions` should be positive"),
    (
        "/embed",
        {"inputs": "a", "dimensions": 385},
        422,
        "Validation",
        "Input validation error: `dimensions` should be smaller than the maximum embedding dimension.",
    ),
    (
        "/embed",
        {"inputs": "a", "prompt_name": "query"},
        422,
        "Validation",
        "Input validation error: `default-prompt-name` is set to `query` but no prompts were found in the Sentence Transformers configuration",
    ),
    ("/embed", {"inputs": [999999]}, 422, "Tokenizer", None),
    ("/embed_all", {"inputs": ""}, 400, "Empty", None),
    ("/embed_sparse", {"inputs": "a"}, 424, "Backend", "Backend error: Model is not an embedding model with SPLADE pooling"),
    ("/similarity", {"inputs": {"source_sentence": "a", "sentences": []}}, 400, "Empty", "`inputs.sentences` cannot be empty"),
    (
        "/similarity",
        {"inputs": {"source_sentence": "a", "sentences": ["b"] * 32}},
        422,
        "Validation",
        "batch size 33 > maximum allowed batch size 32",
    ),
    ("/tokenize", {"inputs": []}, 400, "Empty", "`inputs` cannot be empty"),
    ("/tokenize", {"inputs": ""}, 400, "Empty", "Input validation error: `inputs` cannot be empty"),
    ("/decode", {"ids": []}, 400, "Empty", "Input validation error: `input_ids` cannot be empty"),
    ("/embed", {"inputs": 5}, 422, "Validation", None),
    ("/embed", {"inputs": "a", "normalize": "maybe"}, 422, "Validation", None),
    ("/embed", {"inputs": "a", "truncation_direction": "LEFT"}, 422, "Validation", None),
    ("/embed", {}, 422, "Validation", None),
    ("/embed", {"inputs": [[-1]]}, 422, "Validation", None),
    ("/embed", {"inputs": {"nested": {"deeper": [1, 2]}}}, 422, "Validation", None),
]


@pytest.mark.parametrize("path,body,status,error_type,message", CASES)
def test_error_contract(default_server, path, body, status, error_type, message):
    response = post(default_server, path, body)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["error_type"] == error_type
    assert isinstance(payload["error"], str) and payload["error"]
    if message is not None:
        assert payload["error"] == message


def test_malformed_json_is_a_400_with_the_error_body(default_server):
    response = post(default_server, "/embed", data=b'{"inputs": "a"')
    assert response.status_code == 400
    assert response.json()["error_type"] == "Validation"


def test_body_without_json_content_type_is_still_read(default_server, minilm_reference):
    response = requests.post(
        default_server.url + "/embed",
        data=b'{"inputs": "a"}',
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert response.status_code == 200 and len(response.json()[0]) == minilm_reference.get_embedding_dimension()


def test_payload_over_the_limit_is_413(default_server):
    body = b'{"inputs": "' + b"a" * 2_100_000 + b'"}'
    response = post(default_server, "/embed", data=body)
    assert response.status_code == 413
    assert response.json()["error_type"] == "Validation"


def test_openai_errors_use_openai_shape(default_server):
    response = post(default_server, "/v1/embeddings", {"input": ""})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == "Input validation error: `inputs` cannot be empty"
    assert error["type"] == "Empty" and error["code"] == 400
    response = post(default_server, "/v1/embeddings", {"input": ["a"] * 40})
    assert response.status_code == 422 and response.json()["error"]["code"] == 422
    response = post(default_server, "/v1/embeddings", {"nope": 1})
    assert response.status_code == 422 and "message" in response.json()["error"]


def test_rerank_and_predict_on_an_embedding_model_are_424(default_server):
    for path, body in (
        ("/rerank", {"query": "a", "texts": ["b"]}),
        ("/predict", {"inputs": "a"}),
    ):
        response = post(default_server, path, body)
        assert response.status_code == 424, (path, response.text)
        assert response.json()["error_type"] == "Backend"


def test_server_still_serves_after_errors(default_server):
    for body in ({"inputs": ""}, {"inputs": 5}, {"inputs": ["a"] * 99}):
        post(default_server, "/embed", body)
    assert post(default_server, "/embed", {"inputs": "still alive"}).status_code == 200
