"""Fast JSON answers and TEI's timing headers.

Embedding answers are float arrays; orjson serializes numpy arrays natively (float32 in
its shortest exact form, as TEI's serde does), which is many times faster than building
Python lists and is the main per-request cost outside the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

from tei_bento.engine.engine import Timings

ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "model_dump"):
        return value.model_dump()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, default=_default, option=ORJSON_OPTIONS)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


async def send_json(
    send: Any, status: int, content: Any, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Answer from a raw ASGI middleware, before any route or body parsing runs."""
    body = dumps(content)
    start_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body})


def stack_vectors(vectors: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """One contiguous 2-D array serializes fastest; ragged lists stay lists."""
    dtype = vectors[0].dtype if vectors and vectors[0].dtype.kind in "iu" else np.float32  # quantized stay ints
    if vectors and all(v.shape == vectors[0].shape for v in vectors):
        return np.ascontiguousarray(np.stack(vectors), dtype=dtype)
    return [np.ascontiguousarray(v, dtype=dtype) for v in vectors]


OPENAI_PATHS = ("/v1/embeddings", "/embeddings")


def error_content(
    path: str, message: str, error_type: str, status: int, code: str | None = None
) -> dict[str, Any]:
    """TEI's error body, or OpenAI's shape (TEI's flat fields kept beside it) on its routes,
    whose `code` is the status unless the error has a code of its own (`model_not_found`).

    Lone surrogates (JSON `"\\ud800"`, which Python's parser lets through) are escaped so
    that a message quoting the input can always be encoded.
    """
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    if path in OPENAI_PATHS:
        detail = {"message": message, "type": error_type, "code": code or status}
        return {"error": detail, **detail}
    return {"error": message, "error_type": error_type}


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


def timing_headers(timings: Timings, now: float, compute_type: str) -> dict[str, str]:
    total = _ms(now - timings.started_at)
    return {
        "x-compute-type": compute_type,
        "x-compute-time": total,
        "x-total-time": total,
        "x-compute-characters": str(timings.chars),
        "x-compute-tokens": str(timings.tokens),
        "x-tokenization-time": _ms(timings.tokenization),
        "x-queue-time": _ms(timings.queue),
        "x-inference-time": _ms(timings.inference),
    }


def _header(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": schema}


_NON_NEGATIVE = {"type": "integer", "minimum": 0}
# What `timing_headers` sends, for the OpenAPI spec of every route that answers with them.
TIMING_HEADERS_DOC: dict[str, Any] = {
    "x-compute-type": _header("`cpu` or `gpu+optimized`", {"type": "string"}),
    "x-compute-time": _header("Total time in milliseconds", _NON_NEGATIVE),
    "x-total-time": _header("Total time in milliseconds", _NON_NEGATIVE),
    "x-compute-characters": _header("Characters in the inputs", _NON_NEGATIVE),
    "x-compute-tokens": _header("Tokens computed", _NON_NEGATIVE),
    "x-tokenization-time": _header("Tokenization time in milliseconds", _NON_NEGATIVE),
    "x-queue-time": _header("Time waiting for the model, in milliseconds", _NON_NEGATIVE),
    "x-inference-time": _header("Inference time in milliseconds", _NON_NEGATIVE),
}
