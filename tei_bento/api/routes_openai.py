"""OpenAI-compatible embeddings and model list: POST /v1/embeddings, /embeddings, GET /v1/models.

Vectors are always normalized (as OpenAI's are), `base64` is little-endian float32 as
the `openai` client decodes it, and usage counts the real tokens the model computed.
`model` picks the served model; where only one is served, a different `model` is logged,
never refused, as TEI does (see engine/models.py).
"""

from __future__ import annotations

import base64
import time

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from tei_bento.api.context import context_of
from tei_bento.api.disconnect import unless_disconnected
from tei_bento.api.responses import TIMING_HEADERS_DOC, JSONResponse
from tei_bento.api.routes_embed import ERROR_DESCRIPTIONS, ERRORS
from tei_bento.api.schemas import (
    ModelList,
    OpenAIEmbeddingsRequest,
    OpenAIEmbeddingsResponse,
    OpenAIErrorResponse,
    as_batch,
)
from tei_bento.tasks.base import Route

STARTED = int(time.time())
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
    engine = context.engine_for(request, Route.EMBED, body.model)
    inputs, batch = as_batch(body.input)
    context.count_request(engine, batch, "embed")
    result = await unless_disconnected(
        request, engine.embed(inputs, normalize=True, dimensions=body.dimensions)
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
        "model": engine.name,
        "usage": {"prompt_tokens": result.timings.tokens, "total_tokens": result.timings.tokens},
    }
    return context.reply(engine, content, result.timings, batch)


@router.get("/v1/models", response_model=ModelList, responses={401: ERRORS[401]})
async def list_models(request: Request) -> Response:
    """Every served model, in OpenAI's list format, with its task."""
    models = context_of(request).require_models()
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {
                    "id": engine.name,
                    "object": "model",
                    "created": STARTED,
                    "owned_by": "tei-bento",
                    "task": engine.task.name,
                    "model_id": engine.info.source.model_id,
                }
                for engine in models
            ],
        }
    )
