"""The lean hot path for /embed and /v1/embeddings: which requests it takes, and that its
answers are the full app's, byte for byte, through a real server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
import requests
from starlette.responses import JSONResponse

from tei_bento.api import hot_path
from tei_bento.api.hot_path import HotPathMiddleware
from tei_bento.api.schemas import EmbedRequest
from tei_bento.errors import EmptyError

LIMIT = 1000


class Downstream:
    """The full app: records what reached it, with the body it could read."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await JSONResponse({"full": True})(scope, receive, send)


class FakeState:
    context = None


class FakeApp:
    state = FakeState()


def call(middleware, body: bytes, headers: list[tuple[bytes, bytes]] | None = None, chunks: int = 1):
    """One request through the middleware; its status and JSON answer."""
    if headers is None:
        headers = [(b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "method": "POST", "path": "/embed", "headers": headers, "app": FakeApp(),
             "query_string": b"", "state": {}}
    parts = [body[: len(body) // 2], body[len(body) // 2 :]] if chunks == 2 else [body]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    sent: list[dict[str, Any]] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    status = sent[0]["status"]
    return status, json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


@pytest.fixture
def lean(monkeypatch):
    handled: list[EmbedRequest] = []

    async def handler(body, request):
        handled.append(body)
        if body.inputs == "empty please":
            raise EmptyError("`inputs` cannot be empty").without_prefix()
        return JSONResponse({"lean": body.inputs})

    monkeypatch.setitem(hot_path.HOT_ROUTES, "/embed", (EmbedRequest, handler))
    downstream = Downstream()
    return downstream, handled


def test_a_plain_request_takes_the_lean_path(lean):
    downstream, handled = lean
    status, answer = call(HotPathMiddleware(downstream, LIMIT, None, False), b'{"inputs": "hi"}')
    assert (status, answer) == (200, {"lean": "hi"})
    assert not downstream.bodies and handled[0].inputs == "hi"


def test_a_body_in_several_messages_is_read_whole(lean):
    downstream, handled = lean
    status, answer = call(HotPathMiddleware(downstream, LIMIT, None, False), b'{"inputs": "hello there"}', chunks=2)
    assert answer == {"lean": "hello there"} and not downstream.bodies


@pytest.mark.parametrize(
    "body,headers",
    [
        (b'{"inputs": "a"', None),  # not JSON: the full app's 400
        (b'{"inputs": 5}', None),  # does not validate: its 422
        (b'{"inputs": "\\ud800"}', None),  # a lone surrogate: the full app decides
        (b'{"inputs": "a"}', [(b"content-length", b"15"), (b"origin", b"http://x")]),  # CORS
        (b'{"inputs": "a"}', [(b"transfer-encoding", b"chunked")]),  # no declared length
        (b'{"inputs": "a"}', [(b"content-length", b"2000")]),  # over the payload limit
        (b'{"inputs": "a"}', [(b"content-length", b"abc")]),
    ],
)
def test_everything_else_reaches_the_full_app_with_its_body(lean, body, headers):
    downstream, handled = lean
    status, answer = call(HotPathMiddleware(downstream, LIMIT, None, False), body, headers)
    assert answer == {"full": True} and not handled
    assert downstream.bodies == [body]


def test_the_key_is_checked_and_a_wrong_or_missing_one_goes_to_the_full_app(lean):
    downstream, handled = lean
    middleware = HotPathMiddleware(downstream, LIMIT, "k", False)
    body = b'{"inputs": "a"}'
    length = (b"content-length", str(len(body)).encode())
    assert call(middleware, body, [length, (b"authorization", b"Bearer k")])[1] == {"lean": "a"}
    assert call(middleware, body, [length, (b"authorization", b"Bearer x")])[1] == {"full": True}
    assert call(middleware, body, [length])[1] == {"full": True}
    assert len(handled) == 1


def test_with_tracing_every_request_takes_the_full_app(lean):
    downstream, handled = lean
    assert call(HotPathMiddleware(downstream, LIMIT, None, True), b'{"inputs": "a"}')[1] == {"full": True}
    assert not handled


def test_a_tei_error_gets_the_full_apps_error_body(lean):
    downstream, _ = lean
    status, answer = call(HotPathMiddleware(downstream, LIMIT, None, False), b'{"inputs": "empty please"}')
    assert status == 400
    assert answer == {"error": "`inputs` cannot be empty", "error_type": "Empty"}


# -- through a real server: the lean answer is the full app's -------------------------------

# An `Origin` header sends a request through the full app (CORS); without it the same
# request takes the lean path. Every answer must be the same bytes, status and headers
# (CORS's own headers and the timing values aside).
CASES = [
    ("/embed", {"inputs": "What is Deep Learning?"}),
    ("/embed", {"inputs": ["a", "b c d"], "normalize": False}),
    ("/embed", {"inputs": "a", "dimensions": 8, "truncate": True, "truncation_direction": "Left"}),
    ("/embed", {"inputs": [[101, 2023, 102]]}),
    ("/embed", {"inputs": "a", "embedding_type": "ubinary"}),
    ("/embed", {"inputs": ""}),
    ("/embed", {"inputs": ["a"] * 33}),
    ("/embed", {"inputs": "word " * 400, "truncate": False}),
    ("/embed", {"inputs": "a", "model": "no-such-model"}),
    ("/embed", {"inputs": [999999]}),
    ("/embed", {"inputs": 5}),
    ("/v1/embeddings", {"input": "What is Deep Learning?", "model": "x"}),
    ("/v1/embeddings", {"input": ["a", "b"], "encoding_format": "base64"}),
    ("/embeddings", {"input": ["a", "b"], "dimensions": 16}),
    ("/v1/embeddings", {"input": ""}),
    ("/v1/embeddings", {"input": ["a"] * 40}),
]
VARYING = {"x-compute-time", "x-total-time", "x-tokenization-time", "x-queue-time", "x-inference-time", "date"}


def answer(server, path, body, headers=None):
    response = requests.post(server.url + path, data=json.dumps(body), headers=headers, timeout=60)
    kept = {k.lower(): v for k, v in response.headers.items() if k.lower() not in VARYING}
    kept = {k: v for k, v in kept.items() if not k.startswith("access-control-") and k != "vary"}
    return response.status_code, response.content, kept


@pytest.mark.parametrize("path,body", CASES)
def test_the_lean_answer_is_the_full_apps(default_server, path, body):
    lean = answer(default_server, path, body)
    full = answer(default_server, path, body, {"Origin": "http://client.example"})
    assert lean[0] == full[0], (lean, full)
    assert lean[2] == full[2]
    assert lean[1] == full[1]  # the same computation, serialized the same way


def test_lean_vectors_equal_sentence_transformers(default_server, minilm_reference):
    texts = ["What is Deep Learning?", "a b c", "Le modèle renvoie un vecteur."]
    got = np.array(requests.post(default_server.url + "/embed", json={"inputs": texts}, timeout=60).json())
    np.testing.assert_allclose(got, minilm_reference.encode(texts, normalize_embeddings=True), atol=1e-5)
