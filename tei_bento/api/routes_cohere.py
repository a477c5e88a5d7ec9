"""Cohere's v2 routes, so `cohere.ClientV2(base_url=...)` works unchanged: `/v2/rerank` and
`/v2/embed` (with `embedding_types`, quantized as sentence-transformers does)."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from tei_bento.answers import relevance_results
from tei_bento.api.context import context_of
from tei_bento.api.disconnect import unless_disconnected
from tei_bento.api.routes_embed import ANSWERS
from tei_bento.api.schemas import (
    CohereEmbedRequest,
    CohereEmbedResponse,
    CohereRerankRequest,
    CohereRerankResponse,
)
from tei_bento.engine.engine import Engine
from tei_bento.errors import WrongModelTypeError
from tei_bento.quantization import float_base64, quantize
from tei_bento.tasks.base import Route

router = APIRouter(tags=["Cohere"])
SEARCH_PROMPTS = {"search_query": ("query",), "search_document": ("document", "passage")}
"""Prompt names tried for Cohere's search input types where the folder has no prompt of that name."""


def meta(**billed: int) -> dict[str, Any]:
    return {"api_version": {"version": "2"}, "billed_units": billed}


def prompt_for(engine: Engine, input_type: str | None) -> str | None:
    """The folder's prompt for Cohere's `input_type` (its own name first), else none."""
    if input_type is None:
        return None
    prompts = engine.info.prompts or {}
    for name in (input_type, *SEARCH_PROMPTS.get(input_type, ())):
        if name in prompts:
            return name
    return None


@router.post("/v2/rerank", response_model=CohereRerankResponse, responses=ANSWERS)
async def rerank_v2(body: CohereRerankRequest, request: Request) -> Response:
    """Cohere v2 rerank (`cohere.ClientV2(base_url=...).rerank(model=..., query=..., documents=...)`)."""
    context = context_of(request)
    engine = context.engine_for(request, Route.RERANK, body.model)
    context.count_request(engine, True, "predict")
    result = await unless_disconnected(
        request,
        engine.rerank(body.query, body.documents, truncate=True, instruction=body.instruction),
    )
    content = {
        "id": str(uuid.uuid4()),
        "results": relevance_results(result.values, body.documents, body.top_n, False),
        "meta": meta(search_units=1),
    }
    return context.reply(engine, content, result.timings, True, kind="predict")


@router.post("/v2/embed", response_model=CohereEmbedResponse, responses=ANSWERS)
async def embed_v2(body: CohereEmbedRequest, request: Request) -> Response:
    """Cohere v2 embed: one forward pass, every asked `embedding_types` cut from it (int8 /
    uint8 buckets from the server's calibration, see /info; base64 is float32 bytes)."""
    context = context_of(request)
    engine = context.engine_for(request, Route.EMBED, body.model)
    context.count_request(engine, True, "embed")
    types = list(dict.fromkeys(body.embedding_types or ["float"]))
    calibration = getattr(engine.task, "calibration", None)
    if calibration is None and {"int8", "uint8"} & set(types):
        raise WrongModelTypeError("int8 / uint8 embeddings need a calibrated embedding model")
    result = await unless_disconnected(
        request,
        engine.embed(
            list(body.texts),
            normalize=True,
            truncate=body.truncate != "NONE",
            direction="left" if body.truncate == "START" else "right",
            prompt_name=prompt_for(engine, body.input_type),
            dimensions=body.output_dimension,
        ),
    )
    vectors = np.stack(result.values).astype(np.float32)
    embeddings: dict[str, Any] = {}
    for kind in types:
        if kind == "base64":
            embeddings[kind] = [float_base64(v) for v in vectors]
        elif kind in ("int8", "uint8"):
            embeddings[kind] = quantize(vectors, kind, calibration.ranges(True, body.output_dimension))
        else:
            embeddings[kind] = quantize(vectors, kind)
    content = {
        "id": str(uuid.uuid4()),
        "embeddings": embeddings,
        "texts": list(body.texts),
        "meta": meta(input_tokens=result.timings.tokens),
        "response_type": "embeddings_by_type",
    }
    return context.reply(engine, content, result.timings, True)
