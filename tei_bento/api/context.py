"""Per-app state the routes share: the models, metrics, settings, and reply helpers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from tei_bento.api.errors import FAILURE_LABELS
from tei_bento.api.metrics import Metrics
from tei_bento.api.responses import JSONResponse, timing_headers
from tei_bento.engine.engine import Engine, Timings
from tei_bento.engine.models import Models
from tei_bento.errors import TEIError, UnhealthyError
from tei_bento.settings import Settings
from tei_bento.tasks.base import Route
from tei_bento.tracing import Tracing


@dataclass
class ApiContext:
    settings: Settings
    metrics: Metrics
    models: Models | None = None
    tracing: Tracing | None = None

    async def shutdown(self) -> None:
        """Stop every engine and flush the tracer; the second call (BentoML runs the app's
        lifespan and its own shutdown hook) finds nothing left to do."""
        models, self.models = self.models, None
        if models is not None:
            await models.stop()
        if self.tracing is not None:
            self.tracing.shutdown()

    def require_models(self) -> Models:
        if self.models is None:
            raise UnhealthyError("model is not loaded yet")
        return self.models

    def engine_for(self, request: Request, route: Route | None, name: str | None = None) -> Engine:
        """The engine that answers this request; its name labels the request's metrics."""
        engine = self.require_models().for_route(route, name)
        request.state.model = engine.name
        return engine

    def count_request(self, engine: Engine, batch: bool, kind: str | None = None) -> None:
        """A request that reached a model: te_request_count, and te_embed/predict_count."""
        m, model = self.metrics, engine.name
        m.request_count.labels(method="batch" if batch else "single", model=model).inc()
        if kind == "embed":
            m.embed_count.labels(model=model).inc()
        elif kind == "predict":
            m.predict_count.labels(model=model).inc()

    def count_failure(self, exc: TEIError, model: str) -> None:
        """te_request_failure for a TEI error answered outside the HTTP app's handlers
        (BentoML API methods, gRPC); `model` is "" before routing."""
        self.metrics.request_failure.labels(err=FAILURE_LABELS[exc.error_type], model=model).inc()

    def reply(
        self, engine: Engine, content: Any, timings: Timings, batch: bool, kind: str = "embed"
    ) -> JSONResponse:
        """A successful inference answer: TEI's headers and metrics recorded."""
        now = self.record_success(engine, timings, batch, kind)
        compute_type = "gpu+optimized" if engine.info.device != "cpu" else "cpu"
        return JSONResponse(content, headers=timing_headers(timings, now, compute_type))

    def record_success(self, engine: Engine, timings: Timings, batch: bool, kind: str) -> float:
        """TEI's success metrics and stage spans for an answered request; returns its end."""
        now = time.perf_counter()
        m, model = self.metrics, engine.name
        m.request_success.labels(method="batch" if batch else "single", model=model).inc()
        m.request_duration.labels(model=model).observe(now - timings.started_at)
        m.tokenization_duration.labels(model=model).observe(timings.tokenization)
        m.queue_duration.labels(model=model).observe(timings.queue)
        m.inference_duration.labels(model=model).observe(timings.inference)
        lengths = m.input_length.labels(model=model)
        for length in timings.lengths:
            lengths.observe(length)
        if self.tracing is not None:
            self.tracing.stage_spans(
                timings.tokenization, timings.queue, timings.inference, timings.started_at
            )
        if kind == "embed":
            m.embed_success.labels(model=model).inc()
            m.embed_duration.labels(model=model).observe(now - timings.started_at)
        else:
            m.predict_success.labels(model=model).inc()
            m.predict_duration.labels(model=model).observe(now - timings.started_at)
        return now


def context_of(request: Request) -> ApiContext:
    return request.app.state.context
