"""Per-app state the routes share: the engine, metrics, settings, and reply helpers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from tei_bento.api.metrics import Metrics
from tei_bento.api.responses import JSONResponse, timing_headers
from tei_bento.engine.engine import Engine, Timings
from tei_bento.errors import UnhealthyError
from tei_bento.settings import Settings
from tei_bento.tracing import Tracing


@dataclass
class ApiContext:
    settings: Settings
    metrics: Metrics
    engine: Engine | None = None
    tracing: Tracing | None = None

    def require_engine(self) -> Engine:
        if self.engine is None:
            raise UnhealthyError("model is not loaded yet")
        return self.engine

    @property
    def served_model_name(self) -> str:
        engine = self.require_engine()
        return self.settings.served_model_name or engine.info.source.model_id

    def count_request(self, batch: bool) -> None:
        self.metrics.request_count.labels(method="batch" if batch else "single").inc()

    def reply(
        self, content: Any, timings: Timings, batch: bool, kind: str = "embed"
    ) -> JSONResponse:
        """A successful inference answer: TEI's headers and metrics recorded."""
        now = time.perf_counter()
        m = self.metrics
        m.request_success.labels(method="batch" if batch else "single").inc()
        m.request_duration.observe(now - timings.started_at)
        m.tokenization_duration.observe(timings.tokenization)
        m.queue_duration.observe(timings.queue)
        m.inference_duration.observe(timings.inference)
        if self.tracing is not None:
            self.tracing.stage_spans(
                timings.tokenization, timings.queue, timings.inference, timings.started_at
            )
        if kind == "embed":
            m.embed_success.inc()
            m.embed_duration.observe(now - timings.started_at)
        else:
            m.predict_success.inc()
            m.predict_duration.observe(now - timings.started_at)
        compute_type = "gpu+optimized" if self.require_engine().info.device != "cpu" else "cpu"
        return JSONResponse(content, headers=timing_headers(timings, now, compute_type))


def context_of(request: Request) -> ApiContext:
    return request.app.state.context
