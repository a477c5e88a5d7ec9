"""/tokenize, /decode, /info, /health, /metrics and /docs through a real server."""

from __future__ import annotations

import requests

from tests.metrics import delta, scrape


def post(server, path, body):
    return requests.post(server.url + path, json=body, timeout=60)


def test_tokenize_gives_ids_text_and_byte_offsets(default_server, minilm_reference):
    text = "héllo wörld 🚀"
    tokens = post(default_server, "/tokenize", {"inputs": text}).json()
    assert len(tokens) == 1
    tokens = tokens[0]
    expected_ids = minilm_reference.tokenizer(text)["input_ids"]
    assert [t["id"] for t in tokens] == expected_ids
    assert tokens[0] == {"id": 101, "text": "[CLS]", "special": True, "start": None, "stop": None}
    raw = text.encode("utf-8")
    for token in tokens[1:-1]:
        assert token["special"] is False
        assert raw[token["start"] : token["stop"]].decode("utf-8") == token["text"]
    assert tokens[2]["start"] == len("héllo ".encode("utf-8"))  # bytes, not characters


def test_tokenize_batch_without_special_tokens(default_server):
    got = post(default_server, "/tokenize", {"inputs": ["a b", "c"], "add_special_tokens": False})
    assert [[t["text"] for t in row] for row in got.json()] == [["a", "b"], ["c"]]


def test_decode_single_and_batch(default_server, minilm_reference):
    ids = minilm_reference.tokenizer("Hello there")["input_ids"]
    assert post(default_server, "/decode", {"ids": ids}).json() == ["hello there"]
    both = post(default_server, "/decode", {"ids": [ids, ids], "skip_special_tokens": False})
    assert both.json() == ["[CLS] hello there [SEP]"] * 2


def test_info_describes_the_default_model(default_server, minilm_reference):
    info = requests.get(default_server.url + "/info").json()
    assert info["model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}
    assert info["model_dtype"] == "float32"
    assert info["max_input_length"] == minilm_reference.max_seq_length
    assert info["max_batch_tokens"] == 16384
    assert info["max_client_batch_size"] == 32
    assert info["max_concurrent_requests"] == 512
    assert info["auto_truncate"] is True
    assert info["embedding_dimension"] == minilm_reference.get_embedding_dimension()


def test_health_and_ping(default_server):
    for path in ("/health", "/ping"):
        response = requests.get(default_server.url + path)
        assert response.status_code == 200 and response.content == b""


def test_metrics_use_tei_names_and_move(default_server, minilm_reference):
    texts = ["count", "me too"]
    post(default_server, "/embed", {"inputs": "warm"})
    before = scrape(default_server)
    post(default_server, "/embed", {"inputs": texts})
    after = scrape(default_server)
    model = "sentence-transformers/all-MiniLM-L6-v2"
    lengths = [len(ids) for ids in minilm_reference.tokenizer(texts)["input_ids"]]
    for name, moved in (
        ("te_request_count_total", 1),
        ("te_request_success_total", 1),
        ("te_request_duration_count", 1),
        ("te_request_tokenization_duration_count", 1),
        ("te_request_queue_duration_count", 1),
        ("te_request_inference_duration_count", 1),
        ("te_request_input_length_count", len(texts)),  # one sample per input
        ("te_request_input_length_sum", sum(lengths)),
        ("te_batch_next_size_sum", len(texts)),  # both inputs went through the batcher
        ("te_batch_next_tokens_sum", sum(lengths)),
        ("te_embed_count_total", 1),
        ("te_embed_success_total", 1),
    ):
        assert delta(before, after, name, model=model) == moved, name
    assert delta(before, after, "te_request_count_total", method="batch", model=model) == 1
    assert delta(before, after, "te_request_duration_sum", model=model) > 0
    assert 'te_queue_size{model="sentence-transformers/all-MiniLM-L6-v2"} 0.0' in after


def test_docs_and_openapi(default_server):
    assert "swagger" in requests.get(default_server.url + "/docs").text.lower()
    spec = requests.get(default_server.url + "/openapi.json").json()
    for path in ("/embed", "/embed_all", "/rerank", "/predict", "/v1/embeddings", "/tokenize"):
        assert path in spec["paths"], path
