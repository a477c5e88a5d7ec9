"""Embedding routes: /embed, /embed_all, /embed_sparse, /similarity."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from tei_bento.api.context import context_of
from tei_bento.api.disconnect import unless_disconnected
from tei_bento.api.responses import TIMING_HEADERS_DOC, stack_vectors
from tei_bento.api.schemas import (
    EmbedAllRequest,
    EmbedMultiVectorRequest,
    EmbedRequest,
    EmbedSparseRequest,
    ErrorResponse,
    SimilarityRequest,
    SparseValue,
    as_batch,
)
from tei_bento.answers import cosine, sparse_values
from tei_bento.errors import EmptyError, ValidationError
from tei_bento.tasks.base import Route

router = APIRouter(tags=["Text Embeddings Inference"])
ERROR_DESCRIPTIONS = {
    400: "Empty input, or a body that is not JSON",
    401: "Missing or wrong `Authorization: Bearer <api-key>` (only with `--api-key`)",
    404: "`model` names no served model (GET /v1/models lists them)",
    413: "Payload too large",
    422: "Validation or tokenization error",
    424: "Inference failed or wrong model type",
    429: "Model is overloaded",
    503: "The model is not loaded yet",
}
ERRORS = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in ERROR_DESCRIPTIONS.items()
}
# Routes that answer through `ApiContext.reply` send TEI's timing headers with every 200.
ANSWERS = {200: {"description": "Successful Response", "headers": TIMING_HEADERS_DOC}, **ERRORS}


@router.post("/embed", response_model=list[list[float]], responses=ANSWERS)
async def embed(body: EmbedRequest, request: Request) -> Response:
    """Pooled embeddings, one vector per input (also for a single string)."""
    context = context_of(request)
    engine = context.engine_for(request, Route.EMBED, body.model)
    inputs, batch = as_batch(body.inputs)
    context.count_request(engine, batch, "embed")
    result = await unless_disconnected(
        request,
        engine.embed(
            inputs,
            normalize=body.normalize,
            truncate=body.truncate,
            direction=body.direction,
            prompt_name=body.prompt_name,
            dimensions=body.dimensions,
            embedding_type=body.embedding_type,
        ),
    )
    return context.reply(engine, stack_vectors(result.values), result.timings, batch)


@router.post("/embed_all", response_model=list[list[list[float]]], responses=ANSWERS)
async def embed_all(body: EmbedAllRequest, request: Request) -> Response:
    """Every token's last hidden state, special tokens included, without pooling."""
    context = context_of(request)
    engine = context.engine_for(request, Route.EMBED_ALL, body.model)
    inputs, batch = as_batch(body.inputs)
    context.count_request(engine, batch, "embed")
    result = await unless_disconnected(
        request,
        engine.embed_all(
            inputs, truncate=body.truncate, direction=body.direction, prompt_name=body.prompt_name
        ),
    )
    return context.reply(engine, result.values, result.timings, batch)


@router.post("/embed_sparse", response_model=list[list[SparseValue]], responses=ANSWERS)
async def embed_sparse(body: EmbedSparseRequest, request: Request) -> Response:
    """SPLADE sparse vectors: the non-zero entries of max-pooled log(1 + relu(logits))."""
    context = context_of(request)
    engine = context.engine_for(request, Route.EMBED_SPARSE, body.model)
    inputs, batch = as_batch(body.inputs)
    context.count_request(engine, batch, "embed")
    result = await unless_disconnected(
        request,
        engine.embed_sparse(
            inputs, truncate=body.truncate, direction=body.direction, prompt_name=body.prompt_name
        ),
    )
    content = [sparse_values(indices, values) for indices, values in result.values]
    return context.reply(engine, content, result.timings, batch)


@router.post("/embed_multi_vector", response_model=list[list[list[float]]], responses=ANSWERS)
async def embed_multi_vector(body: EmbedMultiVectorRequest, request: Request) -> Response:
    """tei-bento: ColBERT multi-vector output, one list of normalized token vectors per input."""
    context = context_of(request)
    engine = context.engine_for(request, Route.EMBED_MULTI_VECTOR, body.model)
    inputs = [body.inputs] if isinstance(body.inputs, str) else list(body.inputs)
    context.count_request(engine, True, "embed")
    result = await unless_disconnected(
        request, engine.embed_multi_vector(inputs, is_query=body.is_query, truncate=body.truncate)
    )
    content = [np.ascontiguousarray(v, dtype=np.float32) for v in result.values]
    return context.reply(engine, content, result.timings, True)


@router.post("/similarity", response_model=list[float], responses=ANSWERS)
async def similarity(body: SimilarityRequest, request: Request) -> Response:
    """Cosine similarity of `source_sentence` to each of `sentences`."""
    context = context_of(request)
    engine = context.engine_for(request, Route.EMBED, body.model)
    sentences = body.inputs.sentences
    if not sentences:
        raise EmptyError("`inputs.sentences` cannot be empty").without_prefix()
    limit = engine.settings.max_client_batch_size
    if len(sentences) + 1 > limit:
        raise ValidationError(
            f"batch size {len(sentences) + 1} > maximum allowed batch size {limit}"
        ).without_prefix()
    params = body.parameters
    context.count_request(engine, True)
    result = await unless_disconnected(
        request,
        engine.embed(
            [body.inputs.source_sentence, *sentences],
            normalize=False,
            truncate=params.truncate if params else None,
            direction=params.direction if params else "right",
            prompt_name=params.prompt_name if params else None,
        ),
    )
    vectors = np.stack(result.values)
    return context.reply(engine, cosine(vectors[0], vectors[1:]), result.timings, True)
