"""Service routes: /info, /health, /ping, GET /, /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import PlainTextResponse, Response

from tei_bento import __version__
from tei_bento.api.context import ApiContext, context_of
from tei_bento.api.responses import JSONResponse
from tei_bento.api.routes_embed import ERRORS
from tei_bento.api.schemas import ErrorResponse, Info
from tei_bento.model.tasks import Task

router = APIRouter(tags=["Text Embeddings Inference"])
POOLING_NAMES = {"last-token": "last_token"}


def model_type(context: ApiContext) -> dict:
    info = context.require_engine().info
    if info.task in (Task.EMBEDDING, Task.SPLADE):
        return {"embedding": {"pooling": POOLING_NAMES.get(info.pooling, info.pooling)}}
    labels = {str(k): v for k, v in sorted(info.id2label.items())}
    kind = "reranker" if info.task is Task.RERANKER else "classifier"
    return {kind: {"id2label": labels, "label2id": {v: int(k) for k, v in labels.items()}}}


def build_info(context: ApiContext) -> dict:
    engine = context.require_engine()
    info, settings = engine.info, context.settings
    return {
        "model_id": info.source.model_id,
        "model_sha": info.source.sha or settings.revision,
        "model_dtype": info.dtype,
        "served_model_name": context.served_model_name,
        "model_type": model_type(context),
        "max_concurrent_requests": settings.max_concurrent_requests,
        "max_input_length": info.max_input_length,
        "max_batch_tokens": settings.max_batch_tokens,
        "max_batch_requests": settings.max_batch_requests,
        "max_client_batch_size": settings.max_client_batch_size,
        "auto_truncate": settings.auto_truncate,
        "tokenization_workers": engine.tokenizers.workers,
        "version": __version__,
        "sha": None,
        "docker_label": None,
        "device": info.device,
        "embedding_dimension": info.embedding_size if info.task is Task.EMBEDDING else None,
        "prompts": info.prompts or None,
        "backend": info.backend,
        "accuracy": info.accuracy,
    }


@router.get("/info", response_model=Info, responses={s: ERRORS[s] for s in (401, 503)})
async def get_info(request: Request) -> Response:
    """What is served and with which limits (TEI's fields, plus a few of tei-bento's)."""
    return JSONResponse(build_info(context_of(request)))


UNHEALTHY = {
    200: {"description": "The model answers (empty body)"},
    503: {"model": ErrorResponse, "description": "The model cannot answer"},
}


@router.get("/health", responses=UNHEALTHY, response_class=Response)
@router.get("/ping", responses=UNHEALTHY, response_class=Response)
@router.get("/", responses=UNHEALTHY, response_class=Response)
async def health(request: Request) -> Response:
    """200 with an empty body when the model answers, else 503."""
    context = context_of(request)
    engine = context.engine
    if engine is None or not await engine.health():
        return JSONResponse({"error": "unhealthy", "error_type": "Unhealthy"}, status_code=503)
    return Response(status_code=200)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    registry = context_of(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
