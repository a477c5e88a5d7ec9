"""TEI's error bodies and status codes for every failure, on every route.

TEI answers body-parsing failures in plain text; tei-bento answers them with TEI's JSON
error body instead (400 for malformed JSON, 422 for a wrong shape), so clients can parse
every error the same way. The OpenAI routes answer in OpenAI's error shape.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import Response

from tei_bento.api.disconnect import ClientDisconnected
from tei_bento.api.payload import PayloadTooLarge, payload_error_message
from tei_bento.api.responses import JSONResponse
from tei_bento.errors import STATUS_BY_TYPE, ErrorType, TEIError

log = logging.getLogger(__name__)

OPENAI_PATHS = ("/v1/embeddings", "/embeddings")
FAILURE_LABELS = {
    ErrorType.VALIDATION: "validation",
    ErrorType.EMPTY: "validation",
    ErrorType.TOKENIZER: "tokenization",
    ErrorType.OVERLOADED: "overloaded",
    ErrorType.BACKEND: "inference",
    ErrorType.UNHEALTHY: "unhealthy",
}


def error_response(request: Request, message: str, error_type: ErrorType, status: int) -> Response:
    context = getattr(request.app.state, "context", None)
    if context is not None and request.url.path not in ("/health", "/ping"):
        context.metrics.request_failure.labels(err=FAILURE_LABELS[error_type]).inc()
    if request.url.path in OPENAI_PATHS:
        detail = {"message": message, "type": error_type.value, "code": status}
        return JSONResponse({"error": detail, **detail}, status_code=status)
    return JSONResponse({"error": message, "error_type": error_type.value}, status_code=status)


def describe_validation_error(exc: RequestValidationError) -> tuple[str, int]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = errors[0].get("ctx", {}).get("error", "invalid JSON")
        return f"Failed to parse the request body as JSON: {detail}", 400
    parts = []
    for e in errors[:5]:
        location = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{location}: {e.get('msg')}" if location else str(e.get("msg")))
    return "Failed to deserialize the JSON body into the target type: " + "; ".join(parts), 422


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TEIError)
    async def _tei_error(request: Request, exc: TEIError) -> Response:
        return error_response(request, exc.error, exc.error_type, exc.status)

    @app.exception_handler(PayloadTooLarge)
    async def _too_large(request: Request, exc: PayloadTooLarge) -> Response:
        return error_response(request, payload_error_message(exc.limit), ErrorType.VALIDATION, 413)

    @app.exception_handler(ClientDisconnected)
    async def _dropped(request: Request, exc: ClientDisconnected) -> Response:
        context = getattr(request.app.state, "context", None)
        if context is not None:
            context.metrics.request_failure.labels(err="dropped").inc()
        return Response(status_code=499)  # nobody reads it; nginx's "client closed request"

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        message, status = describe_validation_error(exc)
        return error_response(request, message, ErrorType.VALIDATION, status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:  # pragma: no cover
        log.exception("Unexpected error on %s", request.url.path)
        return error_response(
            request, f"internal error: {exc}", ErrorType.BACKEND, STATUS_BY_TYPE[ErrorType.BACKEND]
        )
