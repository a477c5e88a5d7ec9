"""A multipart body without a boundary gets BentoML's 400, not its 500.

BentoML parses a `multipart/form-data` request to its API methods before any method code
runs, and one whose Content-Type has no `boundary` parameter fails inside that parser as an
unexpected error: a 500 "please check the server log" for a client's mistake (found by
schemathesis over BentoML's /docs.json). This middleware answers such a request itself,
in BentoML's error shape.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from tei_bento.api.responses import send_json


def _needs_boundary(content_type: bytes) -> bool:
    kind, _, parameters = content_type.partition(b";")
    if not kind.strip().lower().startswith(b"multipart/"):
        return False
    names = {p.split(b"=", 1)[0].strip().lower() for p in parameters.split(b";") if b"=" in p}
    return b"boundary" not in names


class MultipartBoundaryGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            content_type = dict(scope.get("headers") or ()).get(b"content-type", b"")
            if _needs_boundary(content_type):
                message = "A multipart/form-data body needs a `boundary` in its Content-Type"
                await send_json(send, 400, {"error": message})
                return
        await self.app(scope, receive, send)
