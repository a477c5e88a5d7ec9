"""TEI's error bodies and status codes for every failure, on every route.

TEI answers body-parsing failures in plain text; tei-bento answers them with TEI's JSON
error body instead (400 for malformed JSON, 422 for a wrong shape), so clients can parse
every error the same way. The OpenAI routes answer in OpenAI's error shape.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from tei_bento.api.disconnect import ClientDisconnected
from tei_bento.api.payload import PayloadTooLarge, payload_error_message
from tei_bento.api.responses import JSONResponse, error_content
from tei_bento.errors import STATUS_BY_TYPE, ErrorType, TEIError

log = logging.getLogger(__name__)

FAILURE_LABELS = {
    ErrorType.VALIDATION: "validation",
    ErrorType.EMPTY: "validation",
    ErrorType.TOKENIZER: "tokenization",
    ErrorType.OVERLOADED: "overloaded",
    ErrorType.BACKEND: "inference",
    ErrorType.UNHEALTHY: "unhealthy",
}


def error_response(
    request: Request,
    message: str,
    error_type: ErrorType,
    status: int,
    headers: dict[str, str] | None = None,
    count: bool = True,
    code: str | None = None,
) -> Response:
    context = getattr(request.app.state, "context", None)
    if count and context is not None and request.url.path not in ("/health", "/ping"):
        failures = context.metrics.request_failure
        failures.labels(err=FAILURE_LABELS[error_type], model=model_of(request)).inc()
    content = error_content(request.url.path, message, error_type.value, status, code)
    return JSONResponse(content, status_code=status, headers=headers)


def model_of(request: Request) -> str:
    """The model a request was routed to (the `model` label), or "" before routing."""
    return getattr(request.state, "model", "")


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
        return answer_exception(request, exc)

    @app.exception_handler(PayloadTooLarge)
    async def _too_large(request: Request, exc: PayloadTooLarge) -> Response:
        return error_response(request, payload_error_message(exc.limit), ErrorType.VALIDATION, 413)

    @app.exception_handler(ClientDisconnected)
    async def _dropped(request: Request, exc: ClientDisconnected) -> Response:
        return answer_exception(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Unknown path (404), wrong method (405), and a body FastAPI could not read (400).

        FastAPI turns any failure to read the body other than malformed JSON into a bare
        400: JSON nested deeper than the parser's recursion limit, bytes that are not
        UTF-8, and a body over the payload limit sent without Content-Length (413).
        """
        cause = exc.__cause__
        if isinstance(cause, PayloadTooLarge):
            return await _too_large(request, cause)
        if exc.status_code == 400 and cause is not None:
            if isinstance(cause, RecursionError):
                detail = "nesting too deep"
            else:
                detail = str(cause) or type(cause).__name__
            message = f"Failed to parse the request body as JSON: {detail}"
            return error_response(request, message, ErrorType.VALIDATION, 400)
        message = f"{exc.detail}: {request.method} {request.url.path}"
        routing = exc.status_code in (404, 405)  # not a request the API failed to answer
        return error_response(
            request, message, ErrorType.VALIDATION, exc.status_code, exc.headers, count=not routing
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        message, status = describe_validation_error(exc)
        return error_response(request, message, ErrorType.VALIDATION, status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:  # pragma: no cover
        return answer_exception(request, exc)


def answer_exception(request: Request, exc: Exception) -> Response:
    """The answer to an exception a route handler raised (also for the lean hot path)."""
    if isinstance(exc, TEIError):
        return error_response(request, exc.error, exc.error_type, exc.status, code=exc.code)
    if isinstance(exc, ClientDisconnected):
        context = getattr(request.app.state, "context", None)
        if context is not None:
            context.metrics.request_failure.labels(err="dropped", model=model_of(request)).inc()
        return Response(status_code=499)  # nobody reads it; nginx's "client closed request"
    log.exception("Unexpected error on %s", request.url.path)
    return error_response(
        request, f"internal error: {exc}", ErrorType.BACKEND, STATUS_BY_TYPE[ErrorType.BACKEND]
    )
