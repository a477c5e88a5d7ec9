"""Closed-loop HTTP load generator over loopback (aiohttp, keep-alive).

Why closed loop: N clients each send a request, wait for the answer, and send the next,
which is how TEI's own benchmark and most embedding pipelines drive a server; throughput
at N clients is then the server's capacity at that queue depth, and latency is what a
caller would see. Why aiohttp with pre-serialized bodies: the client shares the cores
with the server, so it does as little work per request as possible (no JSON encoding in
the timed loop, no JSON decoding of answers, one keep-alive connection per client).

A stage stops by itself: at its time limit, or when its request budget is spent,
whichever comes first, and a hard timeout cancels anything still pending. Only a
measurement window counts: after `warmup_s`, until the stop. Throughput counts the
successes completed inside the window; latency percentiles use the successes started
inside it (so ramp-up and drain do not skew either).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.report import percentile

ROUTES: tuple[str, ...] = ("/embed", "/v1/embeddings")
JSON_HEADERS = {"Content-Type": "application/json"}
# A client told 429 backs off as real clients do (exponential, jittered, capped); retrying
# at once would spend the shared cores on 429 answers instead of on the model.
BACKOFF_429_S = (0.01, 0.2)
IDLE_GAP_S = 0.05  # the pause before each idle-latency request (and own-forward pass)
TIMEOUT = -1  # status recorded for a request that timed out
CLIENT_ERROR = -2  # connection refused/reset

Probe = Callable[[str], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Request:
    """A ready-to-send body and what it carries (for tokens/s and texts/s)."""

    body: bytes
    texts: int
    tokens: int


@dataclass(frozen=True)
class Sample:
    start: float
    end: float
    status: int
    texts: int
    tokens: int


@dataclass
class StageRun:
    """Raw outcome of one stage; `window` is (start, end) on the perf_counter clock."""

    samples: list[Sample]
    window: tuple[float, float]
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)
    issued: int = 0
    stopped_by: str = "time"


def body_for(route: str, texts: Sequence[str]) -> bytes:
    """Request JSON in the route's own schema (TEI's `inputs`, OpenAI's `input`)."""
    if route == "/v1/embeddings":
        return json.dumps({"input": list(texts), "model": "bench"}).encode()
    return json.dumps({"inputs": list(texts)}).encode()


def make_requests(
    route: str,
    texts: Sequence[str],
    tokens: Sequence[int],
    batch_size: int,
    count: int | None = None,
) -> list[Request]:
    """Requests of `batch_size` consecutive corpus texts, cycling over the corpus.

    By default one full cycle (after it the sequence repeats, so a stage just cycles over
    the list and memory stays small). Every stage starts at the same corpus position, so
    all servers and concurrencies see the same sequence of texts.
    """
    out = []
    n = len(texts)
    if count is None:
        count = n // math.gcd(n, batch_size)
    for r in range(count):
        idx = [(r * batch_size + j) % n for j in range(batch_size)]
        out.append(
            Request(
                body=body_for(route, [texts[i] for i in idx]),
                texts=batch_size,
                tokens=sum(tokens[i] for i in idx),
            )
        )
    return out


async def _send(session: aiohttp.ClientSession, url: str, body: bytes) -> int:
    try:
        async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
            await resp.read()
            return resp.status
    except asyncio.TimeoutError:
        return TIMEOUT
    except aiohttp.ClientError:
        return CLIENT_ERROR


async def run_stage(
    base_url: str,
    route: str,
    requests: Sequence[Request],
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    max_requests: int,
    timeout_s: float = 60.0,
    probe: Probe | None = None,
) -> StageRun:
    """Drive `concurrency` closed-loop clients over `requests` (cycled); bounded by
    `max_requests` sent and by time.

    `probe(label)` is awaited at "start", "window_start" and "window_end" (while the load
    is still on), e.g. to scrape /metrics and read CPU counters at the window's edges.
    """
    url = base_url + route
    samples: list[Sample] = []
    probes: dict[str, dict[str, Any]] = {}
    stop = asyncio.Event()
    state = {"next": 0, "stopped_by": "time"}
    connector = aiohttp.TCPConnector(limit=concurrency + 2, keepalive_timeout=75)
    timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def client(session: aiohttp.ClientSession, seed: int) -> None:
        rng = random.Random(seed)
        refused = 0
        while not stop.is_set():
            i = state["next"]
            if i >= max_requests:
                state["stopped_by"] = "requests"
                stop.set()
                return
            state["next"] = i + 1
            req = requests[i % len(requests)]
            start = time.perf_counter()
            status = await _send(session, url, req.body)
            samples.append(Sample(start, time.perf_counter(), status, req.texts, req.tokens))
            refused = refused + 1 if status == 429 else 0
            if refused:
                low, cap = BACKOFF_429_S
                await asyncio.sleep(rng.uniform(0.5, 1.0) * min(cap, low * 2 ** (refused - 1)))

    async def call_probe(label: str) -> None:
        if probe is not None:
            probes[label] = {"t": time.perf_counter(), **(await probe(label))}

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await call_probe("start")
        t0 = time.perf_counter()
        window_start = t0 + warmup_s
        deadline = window_start + duration_s
        tasks = [asyncio.create_task(client(session, seed)) for seed in range(concurrency)]

        async def window_open() -> None:
            await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
            if not stop.is_set():
                await call_probe("window_start")

        opener = asyncio.create_task(window_open())
        try:
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, deadline - time.perf_counter()))
            except asyncio.TimeoutError:
                stop.set()
            t_end = time.perf_counter()
            await call_probe("window_end")
            opener.cancel()
            await asyncio.wait(tasks, timeout=timeout_s + 5)
        finally:  # hard stop, also on Ctrl-C: nothing outlives the stage or its session
            stop.set()
            for task in [opener, *tasks]:
                task.cancel()
            await asyncio.gather(opener, *tasks, return_exceptions=True)

    started = probes.get("window_start", {}).get("t")
    if started is None or started >= t_end:  # budget spent before the warm-up ended
        started = t0
        probes["window_start"] = probes.get("start", {})
    return StageRun(samples, (started, t_end), probes, state["next"], state["stopped_by"])


def window_stats(run: StageRun) -> dict[str, Any]:
    """Throughput and latency over the measurement window (see the module docstring)."""
    w_start, w_end = run.window
    seconds = max(w_end - w_start, 1e-9)
    completed = [s for s in run.samples if w_start <= s.end <= w_end]
    ok = [s for s in completed if s.status == 200]
    latencies = sorted(
        (s.end - s.start) * 1000
        for s in run.samples
        if s.status == 200 and w_start <= s.start < w_end
    )
    statuses = Counter(s.status for s in completed)
    return {
        "window_s": round(seconds, 3),
        "requests_ok": len(ok),
        "requests_per_s": round(len(ok) / seconds, 2),
        "texts_per_s": round(sum(s.texts for s in ok) / seconds, 2),
        "tokens_per_s": round(sum(s.tokens for s in ok) / seconds, 1),
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": round(sum(latencies) / len(latencies), 3) if latencies else None,
        "latency_samples": len(latencies),
        "status_429": statuses.get(429, 0),
        "status_429_stage": sum(1 for s in run.samples if s.status == 429),
        "errors": sum(n for code, n in statuses.items() if code not in (200, 429)),
        "statuses": {str(code): n for code, n in sorted(statuses.items())},
        "issued": run.issued,
        "stopped_by": run.stopped_by,
    }


async def idle_latency(
    base_url: str, route: str, text: str, repeats: int, gap_s: float = IDLE_GAP_S
) -> list[float]:
    """Sequential single-text requests with pauses between: latency with nothing queued.

    The first three answers are dropped (connection set-up, first-call paths).
    """
    body = body_for(route, [text])
    out: list[float] = []
    connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=75)
    async with aiohttp.ClientSession(connector=connector) as session:
        for i in range(repeats + 3):
            start = time.perf_counter()
            status = await _send(session, base_url + route, body)
            elapsed = (time.perf_counter() - start) * 1000
            if status != 200:
                raise RuntimeError(f"idle request to {route} answered {status}")
            if i >= 3:
                out.append(elapsed)
            await asyncio.sleep(gap_s)
    return out
