"""Bytes that are not the method's protobuf message answer INVALID_ARGUMENT.

grpcio decodes a request with the handler's deserializer before any servicer code runs, and
a decode error (truncated bytes, a wrong wire type, a string field that is not UTF-8) ends
the call as UNKNOWN "Unexpected <class 'DecodeError'>", as if the server had failed. TEI's
tonic server answers INTERNAL for the same bytes. Either way a client cannot tell its own
bad message from a server fault, so this interceptor decodes safely and answers the
client's mistake as the client's: INVALID_ARGUMENT with the decoder's reason, on unary
calls before the servicer runs and on streams at the message that is malformed.
Handlers that are not coroutines or async generators (none today) are left to grpcio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
import inspect
from dataclasses import dataclass
from typing import Any

import grpc


@dataclass(frozen=True)
class Malformed:
    """What the safe deserializer hands on instead of a message it could not decode."""

    reason: str

    @property
    def details(self) -> str:
        return f"Invalid request message: {self.reason}"


def safe(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError and anything else the decoder raises
            return Malformed(str(exc) or type(exc).__name__)

    return decode


async def _checked_messages(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details)
        yield request


async def _check_one(request: Any, context: grpc.aio.ServicerContext) -> Any:
    if isinstance(request, Malformed):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details)
    return request


def _returning(behaviour: Callable[..., Awaitable[Any]], streamed_request: bool) -> Callable[..., Awaitable[Any]]:
    """A unary-answer method (unary-unary, stream-unary) that sees only decoded messages."""

    async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if streamed_request:
            return await behaviour(_checked_messages(request, context), context)
        return await behaviour(await _check_one(request, context), context)

    return checked


def _yielding(behaviour: Callable[..., AsyncIterator[Any]], streamed_request: bool) -> Callable[..., AsyncIterator[Any]]:
    """A streamed-answer method (unary-stream, stream-stream) that sees only decoded messages."""

    async def checked(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        given = _checked_messages(request, context) if streamed_request else await _check_one(request, context)
        async for answer in behaviour(given, context):
            yield answer

    return checked


class MalformedMessageInterceptor(grpc.aio.ServerInterceptor):
    """Swaps each handler's deserializer for `safe`, and checks what it hands on."""

    def __init__(self) -> None:
        # grpcio hands out the same registered handler objects call after call: wrap each
        # once. (Each original is kept beside its wrap, so a cached id is never reused.)
        self._wrapped: dict[int, tuple[Any, Any]] = {}

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler  # unknown methods, and the API key's refusals (made per call)
        cached = self._wrapped.get(id(handler))
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[id(handler)] = (handler, _checked_handler(handler))
        return cached[1]


def _checked_handler(handler: Any) -> Any:
    shapes = {
        "unary_unary": (_returning, False),
        "stream_unary": (_returning, True),
        "unary_stream": (_yielding, False),
        "stream_stream": (_yielding, True),
    }
    for field, (wrap, streamed_request) in shapes.items():
        behaviour = getattr(handler, field)
        if behaviour is not None:
            if not (inspect.iscoroutinefunction(behaviour) or inspect.isasyncgenfunction(behaviour)):
                return handler  # a synchronous servicer runs as grpcio decides
            return handler._replace(request_deserializer=safe(handler.request_deserializer), **{field: wrap(behaviour, streamed_request)})
    return handler
