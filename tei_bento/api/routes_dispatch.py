"""Task-dispatched routes: POST /, POST /invocations (SageMaker, HF Inference) and /vertex.

The model decides the route (the one the body's `model` names, else the first served): its
task's `invocation_route` says what it does. An embedding model embeds (or compares
sentences when TASK=sentence-similarity or the body is the sentence-similarity form, which
TEI refuses), a SPLADE model sparse-embeds, a reranker reranks and a classifier predicts.
Each body is validated against that route's own schema.
"""

from __future__ import annotations

import os
from typing import Any, Awaitable, Callable

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from starlette.responses import Response

from tei_bento.api import routes_embed, routes_rank
from tei_bento.api.context import context_of
from tei_bento.api.responses import JSONResponse
from tei_bento.api.routes_embed import ANSWERS, ERRORS
from tei_bento.api.schemas import TaskResponse, VertexResponse
from tei_bento.errors import OverloadedError, ValidationError
from tei_bento.tasks.base import Route

router = APIRouter(tags=["Text Embeddings Inference"])
Handler = Callable[[Any, Request], Awaitable[Response]]
HANDLERS: dict[Route, tuple[type[BaseModel], Handler]] = {
    Route.EMBED: (routes_embed.EmbedRequest, routes_embed.embed),
    Route.EMBED_SPARSE: (routes_embed.EmbedSparseRequest, routes_embed.embed_sparse),
    Route.RERANK: (routes_rank.RerankRequest, routes_rank.rerank),
    Route.PREDICT: (routes_rank.PredictRequest, routes_rank.predict),
}
"""The HTTP handler of each route a task can name as its `invocation_route`."""


def _asks_for_similarity(data: Any) -> bool:
    """The Hugging Face sentence-similarity body: `{"inputs": {"source_sentence", ...}}`."""
    inputs = data.get("inputs") if isinstance(data, dict) else None
    return isinstance(inputs, dict) and "source_sentence" in inputs


def _route_for(request: Request, data: Any) -> tuple[type[BaseModel], Handler]:
    name = data.get("model") if isinstance(data, dict) else None
    models = context_of(request).require_models()
    engine = models.for_route(None, name if isinstance(name, str) else None)
    route = engine.task.invocation_route
    if route is Route.EMBED and engine.task.name == "embedding" and (
        os.environ.get("TASK") == "sentence-similarity" or _asks_for_similarity(data)
    ):
        return routes_embed.SimilarityRequest, routes_embed.similarity
    return HANDLERS[route]


async def _parse(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body",),
                    "msg": str(exc),
                    "ctx": {"error": str(exc)},
                }
            ]
        )


async def _dispatch(
    data: Any, request: Request, route: tuple[type[BaseModel], Handler] | None = None
) -> Response:
    schema, handler = route or _route_for(request, data)
    try:
        body = schema.model_validate(data)
    except PydanticValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    return await handler(body, request)


# These routes read the raw body (its schema depends on the loaded model), so FastAPI cannot
# see it: the spec names it explicitly.
TASK_BODY = {
    "description": "The body of the route the loaded model serves (`model_type` in GET /info):"
    " /embed (or /similarity), /embed_sparse, /rerank or /predict.",
    "anyOf": [
        {"$ref": f"#/components/schemas/{name}"}
        for name in (
            "EmbedRequest",
            "SimilarityRequest",
            "EmbedSparseRequest",
            "RerankRequest",
            "PredictRequest",
        )
    ],
}
VERTEX_BODY = {
    "type": "object",
    "required": ["instances"],
    "properties": {"instances": {"type": "array", "items": TASK_BODY}},
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@router.post(
    "/", response_model=TaskResponse, responses=ANSWERS, openapi_extra=_json_body(TASK_BODY)
)
@router.post(
    "/invocations",
    response_model=TaskResponse,
    responses=ANSWERS,
    openapi_extra=_json_body(TASK_BODY),
)
async def invocations(request: Request) -> Response:
    """Whatever the loaded model serves: /embed, /embed_sparse, /rerank or /predict."""
    return await _dispatch(await _parse(request), request)


@router.post(
    "/vertex",
    response_model=VertexResponse,
    responses=ERRORS,
    openapi_extra=_json_body(VERTEX_BODY),
)
async def vertex(request: Request) -> Response:
    """Vertex AI: `{"instances": [...]}` answered as `{"predictions": [...]}`."""
    data = await _parse(request)
    if not isinstance(data, dict) or not isinstance(data.get("instances"), list):
        raise ValidationError("missing field `instances`").without_prefix()
    permits = context_of(request).require_models().first.settings.max_concurrent_requests
    if len(data["instances"]) > permits:
        # TEI runs the instances at once, one permit (or more) each, and answers 429 when
        # they outnumber the permits: refuse at once rather than run them one by one.
        raise OverloadedError()
    predictions = []
    for instance in data["instances"]:
        # TEI reranks an instance shaped like a rerank request whatever the model (so a
        # non-reranker answers 424 "model is not a re-ranker model", not a parse error).
        reranks = isinstance(instance, dict) and "query" in instance and "texts" in instance
        response = await _dispatch(instance, request, HANDLERS[Route.RERANK] if reranks else None)
        predictions.append(orjson.loads(response.body))
    return JSONResponse({"predictions": predictions})

