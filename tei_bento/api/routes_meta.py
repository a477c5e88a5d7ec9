"""Service routes: /info, /health, /ping, GET /, /metrics."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import PlainTextResponse, Response

from tei_bento import __version__
from tei_bento.api.context import context_of
from tei_bento.api.responses import JSONResponse
from tei_bento.api.routes_embed import ERRORS
from tei_bento.api.schemas import ErrorResponse, Info
from tei_bento.engine.engine import Engine

router = APIRouter(tags=["Text Embeddings Inference"])


def build_info(engine: Engine) -> dict:
    info, settings = engine.info, engine.settings
    return {
        "model_id": info.source.model_id,
        "model_sha": info.source.sha or settings.revision,
        "model_dtype": info.dtype,
        "served_model_name": engine.name,
        "model_type": engine.task.model_type(),
        "max_concurrent_requests": settings.max_concurrent_requests,
        "max_input_length": info.max_input_length,
        "max_batch_tokens": settings.max_batch_tokens,
        "max_batch_requests": settings.max_batch_requests,
        "max_client_batch_size": settings.max_client_batch_size,
        "auto_truncate": settings.auto_truncate,
        "long_inputs": settings.long_inputs,
        "tokenization_workers": engine.tokenizers.workers,
        "version": __version__,
        "sha": None,
        "docker_label": None,
        "device": info.device,
        "embedding_dimension": engine.task.embedding_size if engine.task.name == "embedding" else None,
        "prompts": info.prompts or None,
        "backend": engine.backend.name,
        "accuracy": engine.backend.accuracy,
        "quantization": calibration.describe() if (calibration := getattr(engine.task, "calibration", None)) else None,
    }


@router.get("/info", response_model=Info, responses={s: ERRORS[s] for s in (401, 404, 503)})
async def get_info(request: Request, model: Optional[str] = None) -> Response:
    """What is served and with which limits (TEI's fields, plus a few of tei-bento's): the
    first model, or `?model=NAME` (GET /v1/models lists the names)."""
    return JSONResponse(build_info(context_of(request).engine_for(request, None, model)))


UNHEALTHY = {
    200: {"description": "Every model answers (empty body)"},
    503: {"model": ErrorResponse, "description": "A model cannot answer"},
}


@router.get("/health", responses=UNHEALTHY, response_class=Response)
@router.get("/ping", responses=UNHEALTHY, response_class=Response)
@router.get("/", responses=UNHEALTHY, response_class=Response)
async def health(request: Request) -> Response:
    """200 with an empty body when every model answers, else 503 (naming the models that
    cannot, where several are served)."""
    models = context_of(request).models
    if models is None:
        return JSONResponse({"error": "unhealthy", "error_type": "Unhealthy"}, status_code=503)
    down = [name for name, healthy in (await models.health()).items() if not healthy]
    if not down:
        return Response(status_code=200)
    body: dict = {"error": "unhealthy", "error_type": "Unhealthy"}
    if len(models) > 1:
        body["error"] = "unhealthy: " + ", ".join(f"`{name}` cannot answer" for name in down)
        body["unhealthy_models"] = down
    return JSONResponse(body, status_code=503)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    registry = context_of(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
