"""Prometheus metrics under TEI's names, so TEI dashboards and alerts keep working.

prometheus_client appends `_total` to counters in the text format (TEI's exporter does
not), so `te_request_count` appears as `te_request_count_total`; every other name is
TEI's. Every family carries a `model` label (the served model name; empty for a request
that failed before it reached a model), so several models in one process are told apart
and a single-model dashboard that ignores the label still adds up. Under `bentoml serve`
the same metrics show up in BentoML's /metrics beside its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily

disable_created_metrics()

DURATION_BUCKETS = tuple(1e-5 * 1.5**k for k in range(1, 36))
LENGTH_BUCKETS = tuple(float(2**k) for k in range(18))  # 1 ... 131,072 tokens
BATCH_BUCKETS = tuple(float(2**k) for k in range(13))
TOKEN_BUCKETS = tuple(float(2**k) for k in range(21))


class PermitCollector:
    """tei-bento: each model's permits, read when scraped (every listener sees the same).

    `te_permits_in_use` back at 0 once traffic stops is the proof that no request, however
    it ended (answered, refused, cancelled, disconnected), kept what it held."""

    def __init__(self) -> None:
        self.permits: dict[str, Any] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_use = GaugeMetricFamily("te_permits_in_use", "tei-bento: permits held by requests in flight", labels=["model"])
        total = GaugeMetricFamily("te_permits_total", "tei-bento: max_concurrent_requests", labels=["model"])
        for name, permits in self.permits.items():
            in_use.add_metric([name], permits.total - permits.available)
            total.add_metric([name], permits.total)
        yield in_use
        yield total


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        from prometheus_client import REGISTRY

        self.registry = registry or REGISTRY
        r = self.registry

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, (*labels, "model"), registry=r)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, ("model",), buckets=buckets, registry=r)

        self.request_count = counter("te_request_count", "Requests received", "method")
        self.request_success = counter("te_request_success", "Requests answered", "method")
        self.request_failure = counter("te_request_failure", "Requests failed", "err")
        self.request_duration = histogram(
            "te_request_duration", "Request duration (s)", DURATION_BUCKETS
        )
        self.tokenization_duration = histogram(
            "te_request_tokenization_duration", "Tokenization time (s)", DURATION_BUCKETS
        )
        self.queue_duration = histogram(
            "te_request_queue_duration", "Queue time (s)", DURATION_BUCKETS
        )
        self.inference_duration = histogram(
            "te_request_inference_duration", "Inference time (s)", DURATION_BUCKETS
        )
        self.input_length = histogram(
            "te_request_input_length", "Input length (tokens), one sample per input", LENGTH_BUCKETS
        )
        self.queue_size = Gauge("te_queue_size", "Inputs waiting for the model", ("model",), registry=r)
        self.batch_next_size = histogram("te_batch_next_size", "Inputs per batch", BATCH_BUCKETS)
        self.batch_next_tokens = histogram("te_batch_next_tokens", "Tokens per batch", TOKEN_BUCKETS)
        self.batch_padded_tokens = histogram(
            "te_batch_padded_tokens",
            "tei-bento: tokens computed per batch, padding included",
            TOKEN_BUCKETS,
        )
        self.embed_count = counter("te_embed_count", "Embed requests")
        self.embed_success = counter("te_embed_success", "Embed requests answered")
        self.predict_count = counter("te_predict_count", "Predict requests")
        self.predict_success = counter("te_predict_success", "Predict requests answered")
        self.embed_duration = histogram("te_embed_duration", "Embed duration (s)", DURATION_BUCKETS)
        self.predict_duration = histogram(
            "te_predict_duration", "Predict duration (s)", DURATION_BUCKETS
        )
        self.permits = PermitCollector()
        r.register(self.permits)
        # Read live, not from a file: BentoML's multiprocess /metrics cannot carry it, so its
        # service appends this registry's text (service.py: __metrics__).
        self.permit_registry = CollectorRegistry()
        self.permit_registry.register(self.permits)

    def observer(self, model: str) -> "BatchMetrics":
        """The batcher's observer for one model's engine."""
        return BatchMetrics(self, model)

    def watch_permits(self, model: str, permits: Any) -> None:
        self.permits.permits[model] = permits


@dataclass
class BatchMetrics:
    """The BatchObserver protocol, recording under one model's label."""

    metrics: Metrics
    model: str

    def batch_formed(self, size: int, tokens: int, padded_tokens: int, queued: int) -> None:
        m, model = self.metrics, self.model
        m.batch_next_size.labels(model=model).observe(size)
        m.batch_next_tokens.labels(model=model).observe(tokens)
        m.batch_padded_tokens.labels(model=model).observe(padded_tokens)
        m.queue_size.labels(model=model).set(queued)
