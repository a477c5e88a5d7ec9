"""`--api-key`: inference routes need `Authorization: Bearer <key>`; probes stay open.

The key is compared in constant time so response timing does not leak it. Health, ping,
metrics and docs stay open as in TEI, so orchestrators and scrapers need no secret.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from tei_bento.api.responses import error_content, send_json

OPEN_PATHS = frozenset(
    {
        "/health",
        "/ping",
        "/metrics",
        "/docs",
        "/openapi.json",
        "/api-doc/openapi.json",
        "/docs/oauth2-redirect",
    }
)


class BearerKey:
    """The one `Bearer <key>` check every door (ASGI, the hot path, gRPC) makes, in
    constant time so the reply's timing says nothing about how much of a guess was right."""

    def __init__(self, api_key: str) -> None:
        self.expected = f"Bearer {api_key}".encode()

    def matches(self, supplied: bytes | str | None) -> bool:
        if isinstance(supplied, str):
            supplied = supplied.encode("utf-8", "surrogatepass")
        return hmac.compare_digest(supplied or b"", self.expected)


def is_open(path: str, method: str) -> bool:
    """Whether a request needs no key: probes, docs, GET / (health) and CORS preflights."""
    return path in OPEN_PATHS or (path == "/" and method in ("GET", "HEAD")) or method == "OPTIONS"


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.key = BearerKey(api_key)

    def _is_open(self, scope: Scope) -> bool:
        return is_open(scope.get("path", ""), scope.get("method", ""))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_open(scope):
            await self.app(scope, receive, send)
            return
        if self.key.matches(dict(scope.get("headers") or []).get(b"authorization")):
            await self.app(scope, receive, send)
            return
        message = "Unauthorized: a valid `Authorization: Bearer <api-key>` header is required"
        await send_json(
            send,
            401,
            error_content(scope.get("path", ""), message, "Unauthorized", 401),
            headers=((b"www-authenticate", b"Bearer"),),
        )
