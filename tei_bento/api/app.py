"""The FastAPI app that carries TEI's HTTP contract over an Engine.

The same app is served by uvicorn (`tei-bento serve`) and mounted on the BentoML service
(`bentoml serve`), so both speak exactly the same contract.
"""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from prometheus_client import CollectorRegistry
from starlette.responses import RedirectResponse

from tei_bento import __version__
from tei_bento.api import (
    routes_cohere,
    routes_dispatch,
    routes_embed,
    routes_meta,
    routes_openai,
    routes_rank,
    routes_tokens,
)
from tei_bento.api.auth import ApiKeyMiddleware, is_open
from tei_bento.api.context import ApiContext
from tei_bento.api.errors import install_error_handlers
from tei_bento.api.hot_path import HotPathMiddleware
from tei_bento.api.metrics import Metrics
from tei_bento.api.payload import AssumeJsonMiddleware, PayloadLimitMiddleware
from tei_bento.engine.models import Models
from tei_bento.settings import Settings
from tei_bento.tracing import Tracing, TracingMiddleware

DESCRIPTION = (
    "A drop-in replacement for Hugging Face text-embeddings-inference, served by BentoML. "
    'Errors answer `{"error", "error_type"}` with TEI\'s status codes.'
)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """With --grpc-port, TEI's gRPC API starts beside HTTP on the same event loop and models.
    On shutdown (uvicorn, or BentoML, which runs a mounted app's lifespan), stop every
    engine and flush the tracer."""
    context: ApiContext = app.state.context
    grpc_server = None
    if context.settings.grpc_port is not None:
        from tei_bento.grpc_api.server import start_server

        grpc_server = await start_server(context, context.settings.grpc_port, context.settings.hostname)
    try:
        yield
    finally:
        if grpc_server is not None:
            await grpc_server.stop(grace=5)
        await context.shutdown()


def create_app(settings: Settings, models: Models | None = None) -> FastAPI:
    app = FastAPI(
        title="tei-bento",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    metrics = Metrics(CollectorRegistry())
    tracing = Tracing(settings.otlp_endpoint, settings.otlp_service_name, settings.disable_spans)
    app.state.context = ApiContext(settings=settings, metrics=metrics, tracing=tracing)
    if models is not None:
        attach_models(app, models)
    install_error_handlers(app)
    # Starlette runs the last-added middleware first: the hot path takes the common embed
    # request, CORS answers preflights, then the API key is checked, then the body size,
    # before any body is parsed.
    app.add_middleware(AssumeJsonMiddleware)
    app.add_middleware(PayloadLimitMiddleware, limit=settings.payload_limit)
    if settings.api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key)
        _document_api_key(app)
    if tracing.enabled:
        app.add_middleware(TracingMiddleware, tracing=tracing)
    origins = settings.cors_allow_origin or ["*"]
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST"],
        allow_headers=["content-type", "authorization"],
        expose_headers=["x-compute-time", "x-total-time", "x-compute-tokens"],
    )
    app.add_middleware(
        HotPathMiddleware,
        limit=settings.payload_limit,
        api_key=settings.api_key,
        tracing=tracing.enabled,
    )
    for module in (
        routes_meta,
        routes_embed,
        routes_rank,
        routes_cohere,
        routes_openai,
        routes_tokens,
        routes_dispatch,
    ):
        app.include_router(module.router)

    @app.get("/api-doc/openapi.json", include_in_schema=False)
    async def _openapi_alias() -> RedirectResponse:
        return RedirectResponse("/openapi.json")

    return app


def _document_api_key(app: FastAPI) -> None:
    """With `--api-key`, the spec marks the operations that need the bearer token, so that
    Swagger UI offers "Authorize" and clients generated from the spec send it."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = build()  # FastAPI caches it in app.openapi_schema
            schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["apiKey"] = {"type": "http", "scheme": "bearer"}
            for path, operations in spec.get("paths", {}).items():
                for method, operation in operations.items():
                    if not is_open(path, method.upper()):
                        operation["security"] = [{"apiKey": []}]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def attach_models(app: FastAPI, models: Models) -> None:
    """Hand the loaded models to the app (BentoML creates the app before loading them)."""
    context: ApiContext = app.state.context
    context.models = models
    for engine in models:
        engine.batcher.observer = context.metrics.observer(engine.name)
        context.metrics.watch_permits(engine.name, engine.permits)
