"""Traces exported to an in-process OTLP collector, JSON logs, metrics that move."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.server import free_port, tei_bento_server

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Collector(BaseHTTPRequestHandler):
    spans: list[tuple[str, str, bytes, bytes, bytes]] = []  # service, name, trace, span, parent

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            service = next(
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    Collector.spans.append(
                        (service, span.name, span.trace_id, span.span_id, span.parent_span_id)
                    )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def collector():
    port = free_port()
    server = HTTPServer(("127.0.0.1", port), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/v1/traces"
    server.shutdown()


@pytest.fixture(scope="module")
def traced(collector):
    server = tei_bento_server(
        "--otlp-endpoint", collector, "--otlp-service-name", "tei-bento-test", "--json-output"
    ).start()
    yield server
    server.stop()


def test_request_spans_reach_the_collector(traced):
    headers = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
    response = requests.post(traced.url + "/embed", json={"inputs": ["trace me"]}, headers=headers)
    assert response.status_code == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ours = [s for s in Collector.spans if s[2].hex() == TRACE_ID]
        if {"tokenize", "queue", "inference"} <= {s[1] for s in ours}:
            break
        time.sleep(0.2)
    names = {s[1]: s for s in ours}
    assert {"POST /embed", "tokenize", "queue", "inference"} <= set(names), names
    root = names["POST /embed"]
    assert root[0] == "tei-bento-test"
    assert root[4].hex() == "00f067aa0ba902b7"  # joined the caller's trace
    for stage in ("tokenize", "queue", "inference"):
        assert names[stage][4] == root[3]  # children of the request span


def test_json_output_logs_are_json_lines(traced):
    requests.post(traced.url + "/embed", json={"inputs": "log me"})
    lines = [l for l in traced.log().splitlines() if l.startswith("{")]
    assert lines, traced.log()
    records = [json.loads(l) for l in lines]
    assert all({"timestamp", "level", "message"} <= set(r) for r in records)
    assert any("Ready" in r["message"] for r in records)
    assert any(r["target"].startswith("uvicorn") for r in records)  # the server's own logs too
