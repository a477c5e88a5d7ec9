"""OpenAI-compatible embeddings: POST /v1/embeddings and /embeddings.

Vectors are always normalized (as OpenAI's are), `base64` is little-endian float32 as
the `openai` client decodes it, and usage counts the real tokens the model computed.
A `model` that differs from the served one is logged, never refused, as TEI does.
"""

from __future__ import annotations

import base64
import logging

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from tei_bento.api.context import context_of
from tei_bento.api.disconnect import unless_disconnected
from tei_bento.api.responses import TIMING_HEADERS_DOC
from tei_bento.api.routes_embed import ERROR_DESCRIPTIONS
from tei_bento.api.schemas import (
    OpenAIEmbeddingsRequest,
    OpenAIEmbeddingsResponse,
    OpenAIErrorResponse,
    as_batch,
)

log = logging.getLogger(__name__)
router = APIRouter(tags=["OpenAI compatible"])
ANSWERS = {
    200: {"description": "Successful Response", "headers": TIMING_HEADERS_DOC},
    **{
        status: {"model": OpenAIErrorResponse, "description": description}
        for status, description in ERROR_DESCRIPTIONS.items()
    },
}


def encode_base64(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


@router.post("/v1/embeddings", response_model=OpenAIEmbeddingsResponse, responses=ANSWERS)
@router.post("/embeddings", response_model=OpenAIEmbeddingsResponse, responses=ANSWERS)
async def openai_embeddings(body: OpenAIEmbeddingsRequest, request: Request) -> Response:
    context = context_of(request)
    served = context.served_model_name
    if body.model and body.model != served:
        log.warning("Request names model `%s`; serving `%s`", body.model, served)
    inputs, batch = as_batch(body.input)
    context.count_request(batch)
    context.metrics.embed_count.inc()
    result = await unless_disconnected(
        request, context.require_engine().embed(inputs, normalize=True, dimensions=body.dimensions)
    )
    if body.encoding_format == "base64":
        vectors: list = [encode_base64(v) for v in result.values]
    else:
        vectors = [np.asarray(v, dtype=np.float32) for v in result.values]
    content = {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": vector, "index": index}
            for index, vector in enumerate(vectors)
        ],
        "model": served,
        "usage": {"prompt_tokens": result.timings.tokens, "total_tokens": result.timings.tokens},
    }
    return context.reply(content, result.timings, batch)
