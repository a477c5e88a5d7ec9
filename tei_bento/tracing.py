"""OpenTelemetry traces to `--otlp-endpoint`, with TEI's spans: tokenize, queue, inference.

Each inference request gets a server span (its parent taken from a W3C `traceparent`
header, so traces join the caller's), and the engine's stage timings become child spans
with their real start and end times. A private TracerProvider is used, so BentoML's own
tracing configuration is left alone. `--disable-spans` or no endpoint: nothing recorded.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlparse

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


def _exporter(endpoint: str) -> Any:
    """OTLP over HTTP for :4318 or a /v1/traces URL, gRPC otherwise (TEI's default)."""
    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    if parsed.port == 4318 or parsed.path.rstrip("/").endswith("/v1/traces"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url = endpoint if parsed.path.endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"
        return OTLPSpanExporter(endpoint=url)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, insecure=parsed.scheme != "https")


class Tracing:
    def __init__(self, endpoint: str | None, service_name: str, disabled: bool = False) -> None:
        self.enabled = bool(endpoint) and not disabled
        self.tracer: Any = None
        self.provider: Any = None
        if not self.enabled:
            return
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        self.provider.add_span_processor(
            BatchSpanProcessor(_exporter(str(endpoint)), schedule_delay_millis=500)
        )
        self.tracer = self.provider.get_tracer("tei_bento")
        log.info("Exporting traces to %s as %s", endpoint, service_name)

    def stage_spans(self, tokenization: float, queue: float, inference: float, started: float) -> None:
        """Children of the current request span, placed at their real times."""
        if not self.enabled:
            return
        offset_ns = time.time_ns() - int(time.perf_counter() * 1e9)

        def at(perf_seconds: float) -> int:
            return offset_ns + int(perf_seconds * 1e9)

        tokenized = started + tokenization
        batched = tokenized + queue
        for name, start, end in (
            ("tokenize", started, tokenized),
            ("queue", tokenized, batched),
            ("inference", batched, batched + inference),
        ):
            span = self.tracer.start_span(name, start_time=at(start))
            span.end(end_time=at(end))

    def shutdown(self) -> None:
        """Export what is buffered and stop; later calls do nothing."""
        provider, self.provider = self.provider, None
        if provider is not None:
            provider.shutdown()


class TracingMiddleware:
    """A server span per POST request, joined to the caller's trace via `traceparent`."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or []}
        parent = TraceContextTextMapPropagator().extract(carrier)
        path = scope.get("path", "")
        with self.tracing.tracer.start_as_current_span(
            f"POST {path}", context=parent, kind=trace.SpanKind.SERVER
        ) as span:
            span.set_attribute("http.route", path)

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.status_code", message["status"])
                    if message["status"] >= 500:
                        span.set_status(trace.StatusCode.ERROR)
                await send(message)

            await self.app(scope, receive, traced_send)
