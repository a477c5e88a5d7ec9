"""A lean ASGI path for the hot routes: POST /embed, /v1/embeddings and /embeddings.

Why: on an idle server a one-text `/embed` spent about as long in Starlette's middleware
stack, routing and FastAPI's body parsing and dependency solving as in tokenizing and
replying together. For the common request (JSON that validates, no CORS `Origin`, no
tracing, within the payload limit, with the right key) this path reads the body itself,
parses it with orjson, validates it with the route's own pydantic model and calls the
route's own handler, so the answer, its headers, its metrics and its errors are the
route's. Anything else (a body that does not parse or validate, a preflight or a
cross-origin call, an over-limit or chunked body, a missing key, tracing on) goes to the
full app with the body replayed, which answers it exactly as before: the contract has one
implementation, and this path only skips work that the common request does not need.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tei_bento.api import routes_embed, routes_openai
from tei_bento.api.auth import BearerKey
from tei_bento.api.errors import answer_exception
from tei_bento.api.schemas import EmbedRequest, OpenAIEmbeddingsRequest

Handler = Callable[[Any, Request], Awaitable[Response]]
HOT_ROUTES: dict[str, tuple[type[BaseModel], Handler]] = {
    "/embed": (EmbedRequest, routes_embed.embed),
    "/v1/embeddings": (OpenAIEmbeddingsRequest, routes_openai.openai_embeddings),
    "/embeddings": (OpenAIEmbeddingsRequest, routes_openai.openai_embeddings),
}


class HotPathMiddleware:
    """The outermost middleware of the app (inside Starlette's error middleware only)."""

    def __init__(self, app: ASGIApp, limit: int, api_key: str | None, tracing: bool) -> None:
        self.app = app
        self.limit = limit
        self.key = BearerKey(api_key) if api_key else None
        self.enabled = not tracing  # traced requests take the full path for their spans

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = HOT_ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None or not self.enabled or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        length = self._declared_length(scope)
        if length is None:
            await self.app(scope, receive, send)
            return
        body, complete = await _read_body(receive, length)
        if not complete:  # a disconnect or a body longer than declared: the full app decides
            await self.app(scope, _replay(body, receive, complete), send)
            return
        model, handler = route
        try:
            request_body = model.model_validate(orjson.loads(body))
        except (orjson.JSONDecodeError, ValidationError, RecursionError):
            await self.app(scope, _replay(body, receive, complete), send)
            return
        request = Request(scope, receive)
        try:
            response = await handler(request_body, request)
        except Exception as exc:  # TEI's error body, exactly as the full app answers it
            response = answer_exception(request, exc)
        await response(scope, receive, send)

    def _declared_length(self, scope: Scope) -> int | None:
        """The body's declared length where the lean path may take the request, else None."""
        length: int | None = None
        authorized = self.key is None
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                if not value.isdigit():
                    return None
                length = int(value)
            elif name == b"origin" or name == b"transfer-encoding":
                return None  # CORS headers, or a chunked body: the full app's middlewares
            elif name == b"authorization" and self.key is not None:
                authorized = self.key.matches(value)
        if not authorized or length is None or length > self.limit:
            return None
        return length


async def _read_body(receive: Receive, length: int) -> tuple[bytes, bool]:
    """The whole body, and whether it arrived whole and no longer than declared."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > length:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive, complete: bool) -> Receive:
    """A receive channel that hands the full app the bytes already read, then the rest."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replayed
