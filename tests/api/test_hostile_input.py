"""Hostile input through a real server: every answer is a right one or a clear 4xx.

Unicode of every script, control characters, lone UTF-16 surrogates, strings near the
payload limit, JSON nested 100k deep, wrong types and nulls in every field, huge token
ids, bodies that are not JSON or not UTF-8, wrong methods. Each request gets either the
right answer (200, one vector per input) or a 4xx with TEI's JSON error body (OpenAI's
shape on its routes), never a 5xx, never a hang; a hostile request does not disturb a
concurrent normal one, and the server keeps serving afterwards.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from tests.reference import assert_same_vectors

JSON = {"content-type": "application/json"}
ERROR_TYPES = {"Validation", "Empty", "Tokenizer", "Backend", "Overloaded", "Unhealthy"}
OPENAI_PATHS = ("/v1/embeddings", "/embeddings")
POST_ROUTES = (
    "/embed",
    "/embed_all",
    "/embed_sparse",
    "/embed_multi_vector",
    "/similarity",
    "/rerank",
    "/v1/rerank",
    "/v2/rerank",
    "/v2/embed",
    "/predict",
    "/tokenize",
    "/decode",
    "/v1/embeddings",
    "/embeddings",
    "/",
    "/invocations",
    "/vertex",
)
DIMENSION = 384
LIMIT = 2_000_000  # --payload-limit default


def post(server, path: str, body=None, data: bytes | None = None, **kwargs) -> requests.Response:
    if data is not None:
        return requests.post(server.url + path, data=data, headers=JSON, timeout=60, **kwargs)
    return requests.post(server.url + path, json=body, timeout=60, **kwargs)


def assert_clear_error(response: requests.Response, path: str, statuses=None) -> dict:
    """A 4xx with the JSON error body (OpenAI's shape on the OpenAI routes)."""
    assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:300])
    if statuses is not None:
        assert response.status_code in statuses, (path, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    if path in OPENAI_PATHS:
        error = body["error"]
        assert isinstance(error["message"], str) and error["message"], body
        assert error["type"] in ERROR_TYPES and error["code"] == response.status_code, body
    else:
        assert isinstance(body["error"], str) and body["error"], body
        assert body["error_type"] in ERROR_TYPES, body
    return body


def assert_vectors(response: requests.Response, count: int) -> np.ndarray:
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    vectors = np.asarray(response.json(), dtype=np.float64)
    assert vectors.shape == (count, DIMENSION), vectors.shape
    assert np.isfinite(vectors).all()
    return vectors


def assert_right_or_clear(response: requests.Response, path: str) -> None:
    """For bodies whose meaning is debatable: a right answer or a clear 4xx, never worse."""
    if response.status_code == 200:
        assert response.headers["content-type"].startswith("application/json")
        response.json()
    else:
        assert_clear_error(response, path)


# -- Unicode of every script -------------------------------------------------------------

SCRIPTS = {
    "latin": "Ça va? Übermäßig naïve façade, ñandú, Łódź, Ørsted.",
    "cyrillic": "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "greek": "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "arabic": "نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر",
    "hebrew_rtl": "דג סקרן שט בים מאוכזב ולפתע מצא חברה",
    "devanagari": "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले",
    "thai": "เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน",
    "cjk_chinese": "我能吞下玻璃而不伤身体。",
    "cjk_japanese": "いろはにほへと ちりぬるを 色は匂へど散りぬるを",
    "hangul": "다람쥐 헌 쳇바퀴에 타고파",
    "emoji_zwj": "family 👨‍👩‍👧‍👦 and 🏳️‍🌈 and 👩🏽‍💻",
    "emoji_skin_tones": "👋🏻👋🏼👋🏽👋🏾👋🏿 🇫🇷🇯🇵",
    "combining_marks": "e\u0301 a\u0308 n\u0303 \u1e9b\u0323 A\u030a",
    "zalgo": "Z" + "\u0336\u0347\u0350\u0351\u0352" * 30 + "algo",
    "mixed_bidi": "abc \u202eolleh\u202c שלום 123 مرحبا",
    "math_symbols": "∀x∈ℝ: ∑ᵢ xᵢ² ≥ 0 ∫∂Ω ω = ∫Ω dω",
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_script_embeds(default_server, name):
    assert_vectors(post(default_server, "/embed", {"inputs": SCRIPTS[name]}), 1)


def test_every_script_matches_sentence_transformers(default_server, minilm_reference):
    texts = list(SCRIPTS.values())
    for start in range(0, len(texts), 16):
        chunk = texts[start : start + 16]
        got = assert_vectors(post(default_server, "/embed", {"inputs": chunk}), len(chunk))
        assert_same_vectors(got, minilm_reference.encode(chunk))


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_script_tokenizes_with_utf8_offsets(default_server, name):
    text = SCRIPTS[name]
    response = post(default_server, "/tokenize", {"inputs": text})
    assert response.status_code == 200, response.text
    raw = text.encode("utf-8")
    tokens = response.json()[0]
    for token in tokens:
        if not token["special"]:
            assert 0 <= token["start"] <= token["stop"] <= len(raw), token
    ids = [t["id"] for t in tokens]
    decoded = post(default_server, "/decode", {"ids": ids})
    assert decoded.status_code == 200 and isinstance(decoded.json()[0], str)


@pytest.mark.parametrize("path", ["/v1/embeddings", "/", "/embed_all", "/similarity", "/vertex"])
def test_every_script_on_other_routes(default_server, path):
    texts = list(SCRIPTS.values())[:15]
    body = {
        "/v1/embeddings": {"input": texts},
        "/": {"inputs": texts},
        "/embed_all": {"inputs": texts},
        "/similarity": {"inputs": {"source_sentence": texts[0], "sentences": texts[1:]}},
        "/vertex": {"instances": [{"inputs": t} for t in texts[:4]]},
    }[path]
    response = post(default_server, path, body)
    assert response.status_code == 200, response.text[:300]
    answer = response.json()
    if path == "/v1/embeddings":
        assert len(answer["data"]) == len(texts)
    elif path == "/similarity":
        assert len(answer) == len(texts) - 1 and all(-1.0001 <= s <= 1.0001 for s in answer)
    elif path == "/vertex":
        assert len(answer["predictions"]) == 4
    else:
        assert len(answer) == len(texts)


# -- control characters and lone surrogates ---------------------------------------------

CONTROL = [
    "\x00",
    "a\x00b",
    "\x1b[31mred\x1b[0m",
    "\u200b",
    "zero\u200bwidth\u200c\u200djoiners",
    "\t\n\r\x0b\x0c",
    "\x7f\x01\x02\x03",
    "\ufeffbom",
    "\ufffd\uffff",
    " ",
]


@pytest.mark.parametrize("text", CONTROL, ids=[repr(t) for t in CONTROL])
def test_control_characters_embed(default_server, text):
    assert_vectors(post(default_server, "/embed", {"inputs": text}), 1)
    assert post(default_server, "/tokenize", {"inputs": text}).status_code == 200


def test_control_characters_in_a_batch(default_server):
    assert_vectors(post(default_server, "/embed", {"inputs": CONTROL}), len(CONTROL))


LONE_SURROGATES = [r'"\ud800"', r'"a\udfffb"', r'"\ude00\ud83d"', r'"x\ud800\ud800"']


def _surrogate_body(path: str, text: str) -> bytes:
    """A body with `text` (a JSON string literal) where the route reads its text."""
    return {
        "/embed": '{"inputs": %s}',
        "/embed_all": '{"inputs": [%s, "ok"]}',
        "/embed_sparse": '{"inputs": %s}',
        "/embed_multi_vector": '{"inputs": [%s]}',
        "/similarity": '{"inputs": {"source_sentence": %s, "sentences": ["b"]}}',
        "/rerank": '{"query": %s, "texts": ["b"]}',
        "/v1/rerank": '{"query": "a", "documents": [%s]}',
        "/v2/rerank": '{"query": "a", "documents": [%s], "model": "m"}',
        "/v2/embed": '{"texts": [%s], "model": "m"}',
        "/predict": '{"inputs": %s}',
        "/tokenize": '{"inputs": %s}',
        "/decode": '{"ids": [1], "skip_special_tokens": %s}',
        "/v1/embeddings": '{"input": [%s]}',
        "/embeddings": '{"input": %s}',
        "/": '{"inputs": %s}',
        "/invocations": '{"inputs": [%s]}',
        "/vertex": '{"instances": [{"inputs": %s}]}',
    }[path].replace("%s", text).encode()


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize("text", LONE_SURROGATES)
def test_lone_surrogates_are_a_clear_4xx(default_server, path, text):
    assert_clear_error(post(default_server, path, data=_surrogate_body(path, text)), path)


@pytest.mark.parametrize("path", ["/embed", "/embed_all", "/tokenize"])
@pytest.mark.parametrize("field", ["prompt_name", "truncation_direction"])
def test_lone_surrogate_in_a_field_the_error_message_quotes(default_server, path, field):
    """`prompt_name` is quoted back in the 422: it must still encode (it was a 424)."""
    if path == "/tokenize" and field == "truncation_direction":
        pytest.skip("/tokenize has no truncation_direction")
    data = ('{"inputs": "a", "%s": "\\ud800"}' % field).encode()
    body = assert_clear_error(post(default_server, path, data=data), path, {422})
    assert body["error_type"] == "Validation"
    if field == "prompt_name":
        assert "\\ud800" in body["error"]


def test_escaped_surrogate_pair_is_a_right_answer(default_server):
    escaped = post(default_server, "/embed", data=rb'{"inputs": "smile \ud83d\ude00"}')
    direct = post(default_server, "/embed", {"inputs": "smile 😀"})
    np.testing.assert_allclose(assert_vectors(escaped, 1), assert_vectors(direct, 1), atol=1e-6)


# -- strings near the payload limit ------------------------------------------------------


@pytest.mark.parametrize("truncate", [True, None])
@pytest.mark.parametrize("direction", ["right", "left"])
def test_near_limit_string_is_truncated(default_server, truncate, direction):
    text = "word " * 390_000  # 1.95 MB
    body = {"inputs": text, "truncation_direction": direction}
    if truncate is not None:
        body["truncate"] = truncate
    data = json.dumps(body).encode()
    assert LIMIT - 100_000 < len(data) < LIMIT
    assert_vectors(post(default_server, "/embed", data=data), 1)


def test_near_limit_string_without_truncation_is_422(default_server):
    data = json.dumps({"inputs": "word " * 390_000, "truncate": False}).encode()
    body = assert_clear_error(post(default_server, "/embed", data=data), "/embed", {422})
    assert body["error_type"] == "Validation"


@pytest.mark.parametrize(
    "text",
    ["a" * 1_990_000, "漢" * 660_000, "👨‍👩‍👧" * 110_000],
    ids=["one-huge-token-run", "cjk-1.98MB-utf8", "zwj-emoji"],
)
def test_near_limit_strings_of_any_kind(default_server, text):
    data = json.dumps({"inputs": text, "truncate": True}, ensure_ascii=False).encode()
    assert len(data) < LIMIT
    assert_vectors(post(default_server, "/embed", data=data), 1)


def test_near_limit_batch_on_openai_and_dispatch(default_server):
    texts = ["word " * 12_000] * 32  # 32 inputs of 60 kB: 1.92 MB
    vectors = post(default_server, "/v1/embeddings", {"input": texts})
    assert vectors.status_code == 200 and len(vectors.json()["data"]) == 32
    assert_vectors(post(default_server, "/", {"inputs": texts}), 32)


def test_over_the_limit_without_content_length_is_413(default_server):
    def chunks():
        yield b'{"inputs": "'
        for _ in range(25):
            yield b"a" * 100_000
        yield b'"}'

    for path in ("/embed", "/", "/v1/embeddings"):
        response = post(default_server, path, data=chunks())
        assert_clear_error(response, path, {413})


def test_over_the_limit_on_openai_route_answers_openai_shape(default_server):
    data = b'{"input": "' + b"a" * 2_100_000 + b'"}'
    response = post(default_server, "/v1/embeddings", data=data)
    assert_clear_error(response, "/v1/embeddings", {413})


# -- deep nesting ------------------------------------------------------------------------

DEEP = 100_000


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize(
    "shape",
    ["arrays_in_field", "objects_in_field", "arrays_as_body", "objects_as_body", "depth_500"],
)
def test_deep_nesting_is_a_4xx(default_server, path, shape):
    field = {"/decode": "ids", "/vertex": "instances", "/similarity": "inputs"}.get(path, "inputs")
    if path in OPENAI_PATHS:
        field = "input"
    if path in ("/rerank", "/v1/rerank"):
        field = "texts"
    if path == "/v2/rerank":
        field = "documents"
    if path == "/v2/embed":
        field = "texts"
    data = {
        "arrays_in_field": b'{"%s": ' % field.encode() + b"[" * DEEP + b"]" * DEEP + b"}",
        "objects_in_field": b'{"%s": ' % field.encode() + b'{"a":' * DEEP + b"1" + b"}" * DEEP
        + b"}",
        "arrays_as_body": b"[" * DEEP + b"]" * DEEP,
        "objects_as_body": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
        "depth_500": b'{"%s": ' % field.encode() + b"[" * 500 + b'"x"' + b"]" * 500 + b"}",
    }[shape]
    response = post(default_server, path, data=data)
    assert_clear_error(response, path, {400, 422, 424})


# -- wrong types, nulls, empty bodies -----------------------------------------------------

WRONG_VALUES = [5, -1, 1.5, True, "text", [], [None], [1.5], [[["a"]]], [{}], {}, {"a": 1}, None]
FIELDS = {
    "/embed": ("inputs", ["inputs", "normalize", "truncate", "truncation_direction",
                          "prompt_name", "dimensions", "embedding_type"]),
    "/embed_all": ("inputs", ["inputs", "truncate", "truncation_direction", "prompt_name"]),
    "/embed_multi_vector": ("inputs", ["inputs", "is_query", "truncate", "model"]),
    "/similarity": (None, ["inputs", "parameters"]),
    "/rerank": ("texts", ["query", "texts", "documents", "raw_scores", "return_text", "top_n",
                          "return_documents", "truncate", "instruction"]),
    "/v1/rerank": ("documents", ["query", "documents", "top_n", "return_documents"]),
    "/v2/rerank": ("documents", ["query", "documents", "top_n", "max_tokens_per_doc", "instruction", "model"]),
    "/v2/embed": ("texts", ["texts", "input_type", "embedding_types", "truncate", "output_dimension", "max_tokens"]),
    "/predict": ("inputs", ["inputs", "raw_scores", "truncate", "truncation_direction"]),
    "/tokenize": ("inputs", ["inputs", "add_special_tokens", "prompt_name"]),
    "/decode": ("ids", ["ids", "skip_special_tokens"]),
    "/v1/embeddings": ("input", ["input", "model", "user", "encoding_format", "dimensions"]),
    "/": ("inputs", ["inputs", "normalize", "truncate", "dimensions"]),
    "/vertex": (None, ["instances"]),
}
VALID = {
    "/embed": {"inputs": "a"},
    "/embed_all": {"inputs": "a"},
    "/embed_multi_vector": {"inputs": "a"},
    "/similarity": {"inputs": {"source_sentence": "a", "sentences": ["b"]}},
    "/rerank": {"query": "a", "texts": ["b"]},
    "/v1/rerank": {"query": "a", "documents": ["b"]},
    "/v2/rerank": {"query": "a", "documents": ["b"], "model": "m"},
    "/v2/embed": {"texts": ["b"], "model": "m"},
    "/predict": {"inputs": "a"},
    "/tokenize": {"inputs": "a"},
    "/decode": {"ids": [101, 102]},
    "/v1/embeddings": {"input": "a"},
    "/": {"inputs": "a"},
    "/vertex": {"instances": [{"inputs": "a"}]},
}
WRONG_TYPE_CASES = [
    (path, field, value)
    for path, (_, fields) in FIELDS.items()
    for field in fields
    for value in WRONG_VALUES
]


@pytest.mark.parametrize(
    "path,field,value", WRONG_TYPE_CASES, ids=[f"{p}-{f}-{v!r}" for p, f, v in WRONG_TYPE_CASES]
)
def test_wrong_types_in_every_field(default_server, path, field, value):
    body = dict(VALID[path]) | {field: value}
    response = post(default_server, path, body)
    if response.status_code == 200:  # a value the field may take (`None` for an option, ...)
        answer = response.json()
        if path in ("/embed", "/"):  # one vector (`dimensions` may shorten it)
            assert len(answer) == 1 and all(math.isfinite(x) for x in answer[0])
        return
    assert_clear_error(response, path)


@pytest.mark.parametrize("path", list(FIELDS))
def test_null_in_every_field_at_once(default_server, path):
    body = {field: None for field in FIELDS[path][1]}
    assert_clear_error(post(default_server, path, body), path)


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize(
    "data", [b"{}", b"null", b"[]", b"", b"   ", b'""', b"0", b"true", b'{"inputs": null}']
)
def test_empty_and_null_bodies(default_server, path, data):
    assert_clear_error(post(default_server, path, data=data), path)


# -- token ids ---------------------------------------------------------------------------

HUGE_IDS = [10**30, 2**64, 2**63, 2**32, 2**31, 30522, 99_999_999]


@pytest.mark.parametrize("token_id", HUGE_IDS)
@pytest.mark.parametrize(
    "path,body",
    [
        ("/embed", lambda i: {"inputs": [i]}),
        ("/embed", lambda i: {"inputs": ["a", [101, i, 102]]}),
        ("/embed_all", lambda i: {"inputs": [i]}),
        ("/v1/embeddings", lambda i: {"input": [[i]]}),
        ("/decode", lambda i: {"ids": [i]}),
        ("/decode", lambda i: {"ids": [[101], [i]]}),
        ("/", lambda i: {"inputs": [i]}),
    ],
)
def test_huge_token_ids_are_a_tokenizer_error(default_server, token_id, path, body):
    response = post(default_server, path, body(token_id))
    assert_clear_error(response, path, {422})


@pytest.mark.parametrize("ids", [[-1], [-(2**63)], [1.5], [1e308], [[1, "a"]], [[-1], "a"]])
@pytest.mark.parametrize("path,field", [("/embed", "inputs"), ("/decode", "ids")])
def test_negative_and_float_ids_are_422(default_server, ids, path, field):
    assert_clear_error(post(default_server, path, {field: ids}), path, {422})


@pytest.mark.parametrize("ids", [["1"], [True, 1], [101, "7592", 102]])
@pytest.mark.parametrize("path,field", [("/embed", "inputs"), ("/decode", "ids")])
def test_string_and_bool_ids_are_read_or_refused_clearly(default_server, ids, path, field):
    assert_right_or_clear(post(default_server, path, {field: ids}), path)


def test_integral_float_id_is_read_as_an_int(default_server):
    as_float = post(default_server, "/embed", data=b'{"inputs": [101, 7592.0, 102]}')
    as_int = post(default_server, "/embed", {"inputs": [101, 7592, 102]})
    np.testing.assert_allclose(assert_vectors(as_float, 1), assert_vectors(as_int, 1))


def test_a_million_wrong_items_fail_fast(default_server):
    """Each list stops at its first bad item: no million-error report built for seconds."""
    for path, field, item in (
        ("/embed", "inputs", b"null"),
        ("/embed", "inputs", b"[-1]"),
        ("/v1/embeddings", "input", b"{}"),
        ("/decode", "ids", b"null"),
        ("/tokenize", "inputs", b"1"),
        ("/rerank", "texts", b"null"),
        ("/", "inputs", b"null"),
    ):
        data = b'{"%s": [' % field.encode() + b",".join([item] * 380_000) + b"]}"
        assert len(data) < LIMIT
        started = time.monotonic()
        response = post(default_server, path, data=data)
        elapsed = time.monotonic() - started
        assert_clear_error(response, path, {422})
        assert elapsed < 5, (path, item, elapsed)  # was 12-18 s of a blocked event loop


# -- bodies that are not JSON, not UTF-8 -------------------------------------------------

NOT_JSON = [
    b"hello world",
    b"<xml>inputs</xml>",
    b"inputs=a&normalize=true",
    b"{'inputs': 'a'}",
    b'{"inputs": "a"',
    b'{"inputs": "a"} trailing',
    b'{"inputs": "a",}',
    b'{"inputs": NaN}',
    b'{"inputs": "a\x00b"}',
    b"\x00\x00\x00\x00",
]
NOT_UTF8 = [
    b'{"inputs": "\xff\xfe"}',
    b'{"inputs": "\xc3\x28"}',
    b'{"inputs": "\xc0\xaf"}',
    b'{"inputs": "\xed\xa0\x80"}',  # a surrogate encoded in UTF-8
    b'{"inputs": "caf\xe9"}',  # latin-1
    b"\xff" * 64,
]


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize("data", NOT_JSON + NOT_UTF8)
def test_non_json_and_non_utf8_bodies_are_a_clear_4xx(default_server, path, data):
    # Python's parser reads a surrogate encoded in UTF-8 ("surrogatepass"); the tokenizer
    # then refuses it (422), or the route does not fit the model first (424).
    assert_clear_error(post(default_server, path, data=data), path, {400, 422, 424})


@pytest.mark.parametrize(
    "data",
    [
        b'\xef\xbb\xbf{"inputs": "bom"}',
        '{"inputs": "utf-16"}'.encode("utf-16"),
        '{"inputs": "utf-32"}'.encode("utf-32"),
    ],
    ids=["utf8-bom", "utf16", "utf32"],
)
@pytest.mark.parametrize("path", ["/embed", "/"])
def test_other_unicode_encodings_are_read_or_refused_clearly(default_server, data, path):
    response = post(default_server, path, data=data)
    if response.status_code == 200:
        assert_vectors(response, 1)
    else:
        assert_clear_error(response, path, {400})


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data"])
def test_any_content_type_is_read_as_json(default_server, content_type):
    response = requests.post(
        default_server.url + "/embed",
        data=b'{"inputs": "a"}',
        headers={"content-type": content_type},
        timeout=30,
    )
    assert_vectors(response, 1)


# -- wrong methods and paths --------------------------------------------------------------


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_on_post_routes_is_405(default_server, path, method):
    if path == "/" and method == "GET":
        pytest.skip("GET / is the health probe")
    response = requests.request(method, default_server.url + path, json={"inputs": "a"}, timeout=30)
    assert_clear_error(response, path, {405})
    assert response.headers["allow"]
    if path != "/":  # GET / and POST / are two routes; Starlette names the first one's methods
        assert "POST" in response.headers["allow"]


@pytest.mark.parametrize("path", ["/info", "/health", "/ping", "/metrics"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_method_on_get_routes_is_405(default_server, path, method):
    response = requests.request(method, default_server.url + path, timeout=30)
    assert_clear_error(response, path, {405})
    assert "GET" in response.headers["allow"]


@pytest.mark.parametrize(
    "path", ["/nope", "/v2/embeddings", "/%00", "/..%2f..%2fetc", "/" + "x" * 4000]
)
def test_unknown_paths_are_404_with_the_error_body(default_server, path):
    for method in ("GET", "POST"):
        response = requests.request(method, default_server.url + path, timeout=30)
        assert response.status_code in (404, 405), response.text
        assert_clear_error(response, path)


# -- /vertex: many instances ----------------------------------------------------------------


def test_vertex_with_more_instances_than_permits_is_429_at_once(default_server):
    info = requests.get(default_server.url + "/info", timeout=30).json()
    count = info["max_concurrent_requests"] + 1
    data = b'{"instances": [' + b",".join([b'{"inputs": "a"}'] * count) + b"]}"
    started = time.monotonic()
    response = post(default_server, "/vertex", data=data)
    assert_clear_error(response, "/vertex", {429})
    assert time.monotonic() - started < 10


# -- a hostile request does not hurt a normal one; the server survives ----------------------

HOSTILE = [
    ("/embed", b'{"inputs": ' + b"[" * DEEP + b"]" * DEEP + b"}"),
    ("/embed", rb'{"inputs": "a\ud800b"}'),
    ("/embed", b'{"inputs": "\xff\xfe"}'),
    ("/embed", json.dumps({"inputs": "word " * 390_000, "truncate": True}).encode()),
    ("/embed", json.dumps({"inputs": "word " * 390_000, "truncate": False}).encode()),
    ("/embed", b'{"inputs": [' + b",".join([b"null"] * 380_000) + b"]}"),
    ("/embed", b'{"inputs": [' + b",".join([b"[]"] * 600_000) + b"]}"),
    ("/embed", json.dumps({"inputs": [2**64]}).encode()),
    ("/v1/embeddings", json.dumps({"input": ["word " * 12_000] * 32}).encode()),
    ("/vertex", b'{"instances": [' + b",".join([b'{"inputs": "a"}'] * 600) + b"]}"),
    ("/", b'{"inputs": ' + b"[" * DEEP + b"]" * DEEP + b"}"),
    ("/tokenize", json.dumps({"inputs": ["word " * 12_000] * 8}).encode()),
]


def test_hostile_requests_do_not_hurt_concurrent_normal_ones(default_server):
    normal_body = {"inputs": ["a normal request", "another one"]}
    reference = assert_vectors(post(default_server, "/embed", normal_body), 2)
    latencies: list[float] = []

    def hostile(item) -> int:
        path, data = item
        response = post(default_server, path, data=data)
        if response.status_code != 200:
            assert_clear_error(response, path)
        return response.status_code

    def normal_until(done) -> int:
        count = 0
        while not done() or count < 5:
            started = time.monotonic()
            vectors = assert_vectors(post(default_server, "/embed", normal_body), 2)
            latencies.append(time.monotonic() - started)
            np.testing.assert_allclose(vectors, reference, atol=1e-5)
            count += 1
        return count

    with ThreadPoolExecutor(4) as attackers, ThreadPoolExecutor(2) as clients:
        attacks = [attackers.submit(hostile, item) for item in HOSTILE * 2]
        finished = lambda: all(attack.done() for attack in attacks)  # noqa: E731
        normals = [clients.submit(normal_until, finished) for _ in range(2)]
        statuses = [a.result(timeout=300) for a in attacks]
        answered = sum(n.result(timeout=300) for n in normals)
    assert all(400 <= s < 500 or s == 200 for s in statuses), statuses
    assert answered >= 10
    assert max(latencies) < 30, max(latencies)  # slowed by the CPU they share, never stuck


def test_server_survives_everything(default_server):
    assert default_server.process is None or default_server.process.poll() is None
    assert requests.get(default_server.url + "/health", timeout=30).status_code == 200
    vectors = assert_vectors(post(default_server, "/embed", {"inputs": "still alive"}), 1)
    assert math.isclose(float(np.linalg.norm(vectors[0])), 1.0, abs_tol=1e-4)
