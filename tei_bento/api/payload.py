"""Refuse bodies over `--payload-limit` with 413 before reading them whole."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tei_bento.api.responses import error_content, send_json


class PayloadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(payload_error_message(limit))
        self.limit = limit


def payload_error_message(limit: int) -> str:
    return f"Failed to buffer the request body: length limit exceeded ({limit} bytes)"


class PayloadLimitMiddleware:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise PayloadTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLarge:
            if not started:
                await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = payload_error_message(self.limit)
        await send_json(send, 413, error_content(scope.get("path", ""), message, "Validation", 413))


class AssumeJsonMiddleware:
    """Treat POST bodies as JSON whatever their Content-Type says.

    TEI answers 415 to `curl -d` (which sends form encoding); every body of this API is JSON,
    so tei-bento reads it as JSON instead of refusing a request it understands.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST":
            headers = [(k, v) for k, v in scope.get("headers") or [] if k != b"content-type"]
            content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
            if not content_type.split(b";")[0].strip().endswith(b"json"):
                scope = dict(scope)
                scope["headers"] = headers + [(b"content-type", b"application/json")]
        await self.app(scope, receive, send)
