"""Prometheus metrics under TEI's names, so TEI dashboards and alerts keep working.

prometheus_client appends `_total` to counters in the text format (TEI's exporter does
not), so `te_request_count` appears as `te_request_count_total`; every other name is
TEI's. Under `bentoml serve` the same metrics show up in BentoML's /metrics beside its own.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()

DURATION_BUCKETS = tuple(1e-5 * 1.5**k for k in range(1, 36))


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, max_input_length: int = 512):
        from prometheus_client import REGISTRY

        self.registry = registry or REGISTRY
        r = self.registry

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=r)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, buckets=buckets, registry=r)

        self.request_count = counter("te_request_count", "Requests received", ("method",))
        self.request_success = counter("te_request_success", "Requests answered", ("method",))
        self.request_failure = counter("te_request_failure", "Requests failed", ("err",))
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
        length_buckets = tuple(float(2**k) for k in range(20) if 2**k <= max(max_input_length, 1))
        self.input_length = histogram(
            "te_request_input_length", "Input length (tokens)", length_buckets or (1.0,)
        )
        self.queue_size = Gauge("te_queue_size", "Inputs waiting for the model", registry=r)
        self.batch_next_size = histogram(
            "te_batch_next_size", "Inputs per batch", tuple(float(2**k) for k in range(13))
        )
        self.batch_next_tokens = histogram(
            "te_batch_next_tokens", "Tokens per batch", tuple(float(2**k) for k in range(21))
        )
        self.batch_padded_tokens = histogram(
            "te_batch_padded_tokens",
            "tei-bento: tokens computed per batch, padding included",
            tuple(float(2**k) for k in range(21)),
        )
        self.embed_count = counter("te_embed_count", "Embed requests")
        self.embed_success = counter("te_embed_success", "Embed requests answered")
        self.predict_count = counter("te_predict_count", "Predict requests")
        self.predict_success = counter("te_predict_success", "Predict requests answered")
        self.embed_duration = histogram("te_embed_duration", "Embed duration (s)", DURATION_BUCKETS)
        self.predict_duration = histogram(
            "te_predict_duration", "Predict duration (s)", DURATION_BUCKETS
        )

    # BatchObserver protocol
    def batch_formed(self, size: int, tokens: int, padded_tokens: int, queued: int) -> None:
        self.batch_next_size.observe(size)
        self.batch_next_tokens.observe(tokens)
        self.batch_padded_tokens.observe(padded_tokens)
        self.queue_size.set(queued)
