"""The benchmark, end to end: baselines, each server config, the naive server, reports.

    python -m bench.run --name cpu --config default= --config small="--max-batch-tokens 4096"
    python -m bench.run --quick                      # smoke test, < 60 s, <= 8 clients

Why one command does everything: ratios (server / in-process encode, tei-bento / naive)
are only meaningful when both sides ran on the same machine at the same time, so the
in-process SentenceTransformer baseline and the naive server run in the same invocation
as the configs under test. Each server is started by the harness on a free loopback
port, warmed up, measured stage by stage, and stopped before the next one starts, so
servers never compete for the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import os
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import corpus as corpus_mod
from bench import loadgen, report
from bench.plans import PLANS, Plan, int_list, parse_config, plan_from
from bench.servers import (
    REPO,
    Server,
    display,
    free_port,
    naive_command,
    server_env,
    tei_bento_command,
)
from tei_bento.settings import DEFAULT_MODEL

RESULTS_DIR = Path(__file__).resolve().parent / "results"
METRIC_PREFIXES = ("te_batch_", "te_request_count", "te_request_failure", "te_queue_size")


def short_text(items: Sequence[corpus_mod.Item]) -> str:
    """The idle-latency text: the corpus's first query of 6-10 words (fixed, short)."""
    return next(i.text for i in items if i.kind == "query" and 6 <= i.words <= 10)


def parse_checkout(value: str) -> tuple[str, Path]:
    name, sep, folder = value.partition("=")
    path = Path(folder).expanduser().resolve()
    if not sep or not name.strip() or not (path / "tei_bento").is_dir():
        raise argparse.ArgumentTypeError(f"expected NAME=DIR of a tei-bento checkout, got `{value}`")
    return name.strip(), path


def checkout_env(checkout: Path | None) -> dict[str, str]:
    """The servers' environment; PYTHONPATH puts another checkout's tei_bento first."""
    env = server_env()
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    return env


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--name", help="result file stem (default: the mode)")
    p.add_argument(
        "--config",
        action="append",
        type=parse_config,
        default=None,
        metavar="NAME=FLAGS",
        help="a tei-bento config: extra `tei-bento serve` flags (repeat; "
        "default: one config `default=`)",
    )
    p.add_argument(
        "--checkout",
        action="append",
        type=parse_checkout,
        default=None,
        metavar="NAME=DIR",
        help="config NAME runs the tei_bento of another checkout (e.g. `git worktree add "
        "/tmp/before <commit>`), so a change is measured against its base in one run",
    )
    p.add_argument("--stages", choices=sorted(PLANS), default="full")
    p.add_argument("--quick", action="store_true", help="same as --stages quick")
    p.add_argument(
        "--model-id",
        default=DEFAULT_MODEL,
        help="model for every server and the baselines (default: bundled MiniLM)",
    )
    p.add_argument("--concurrency", type=int_list, help="override, e.g. 1,8,32,128")
    p.add_argument("--batch-sizes", type=int_list, help="texts per request, e.g. 1,8")
    p.add_argument(
        "--routes", type=lambda v: tuple(v.split(",")), help="e.g. /embed,/v1/embeddings"
    )
    p.add_argument("--duration", type=float, help="measurement window per stage, seconds")
    p.add_argument("--naive-concurrency", type=int, help="clients for the naive server")
    p.add_argument("--no-naive", action="store_true", help="skip the naive server")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    return p


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- one server ---------------------------------------------------------------------------


class Workload:
    """Corpus texts with their token counts, and the baseline every ratio uses."""

    def __init__(
        self,
        texts: list[str],
        tokens: list[int],
        st_best_tokens_per_s: float,
        bare_forward_ms: float,
        idle_text: str,
        model_id: str = DEFAULT_MODEL,
    ) -> None:
        self.texts = texts
        self.tokens = tokens
        self.st_best = st_best_tokens_per_s
        self.bare_forward_ms = bare_forward_ms
        self.idle_text = idle_text
        self.model_id = model_id


async def drive(
    server: Server,
    plan: Plan,
    work: Workload,
    routes: Sequence[str],
    concurrencies: Sequence[int],
    metrics: bool,
    record: dict[str, Any],
) -> None:
    """Warm up, measure idle latency, then every stage, filling `record` as it goes
    (so a failure or Ctrl-C part-way keeps what was measured)."""
    import aiohttp

    assert server.sampler is not None
    sampler = server.sampler
    async with aiohttp.ClientSession() as probe_session:

        async def probe(_: str) -> dict[str, Any]:
            out: dict[str, Any] = {
                "server_cpu_s": sampler.cpu_seconds(),
                "client_cpu_s": time.process_time(),
            }
            if metrics:
                async with probe_session.get(server.url + "/metrics") as resp:
                    parsed = report.parse_metrics(await resp.text())
                out["metrics"] = {k: v for k, v in parsed.items() if k.startswith(METRIC_PREFIXES)}
            return out

        warm = loadgen.make_requests("/embed", work.texts, work.tokens, 8)
        await loadgen.run_stage(
            server.url,
            "/embed",
            warm,
            min(4, max(concurrencies)),
            plan.server_warmup_s,
            0.0,
            plan.max_requests,
        )
        idle: dict[str, Any] = record["idle"]
        for route in routes:
            samples = await loadgen.idle_latency(
                server.url, route, work.idle_text, plan.idle_repeats
            )
            median = statistics.median(samples)
            own = record.get("own_forward", {}).get("median_ms")
            idle[route] = {
                "n": len(samples),
                "median_ms": round(median, 3),
                "p90_ms": report.percentile(samples, 90),
                "min_ms": round(min(samples), 3),
                "overhead_ms": round(median - work.bare_forward_ms, 3),
                "overhead_own_ms": round(median - own, 3) if own is not None else None,
            }
            log(
                f"  [{server.label}] idle {route}: median {median:.2f} ms "
                f"(bare forward {work.bare_forward_ms:.2f} ms)"
            )
        stages: list[dict[str, Any]] = record["stages"]
        for route in routes:
            for batch_size in plan.batch_sizes:
                requests = loadgen.make_requests(route, work.texts, work.tokens, batch_size)
                for concurrency in concurrencies:
                    await asyncio.sleep(plan.gap_s)
                    t_start = time.perf_counter()
                    run = await loadgen.run_stage(
                        server.url,
                        route,
                        requests,
                        concurrency,
                        plan.duration_s,
                        plan.warmup_s,
                        plan.max_requests,
                        probe=probe,
                    )
                    stage = stage_record(run, route, concurrency, batch_size, work)
                    stage["peak_rss_mib"] = round(
                        sampler.peak(t_start, time.perf_counter()) / 2**20, 1
                    )
                    stages.append(stage)
                    log(
                        f"  [{server.label}] {route} clients={concurrency} "
                        f"texts/req={batch_size}: {stage['tokens_per_s']:.0f} tok/s "
                        f"({stage['ratio_to_st']}x ST) {stage['requests_per_s']} req/s "
                        f"p50 {stage['p50_ms']} p99 {stage['p99_ms']} ms "
                        f"429={stage['status_429']} err={stage['errors']} "
                        f"pad={stage['padding_efficiency']} rss={stage['peak_rss_mib']} MiB"
                    )
                    if stage["latency_samples"] < 10:
                        log(
                            f"  warning: only {stage['latency_samples']} requests measured; "
                            "the window is short for this load (--duration)"
                        )


def stage_record(
    run: loadgen.StageRun, route: str, concurrency: int, batch_size: int, work: Workload
) -> dict[str, Any]:
    stats = loadgen.window_stats(run)
    start, end = run.probes.get("window_start", {}), run.probes.get("window_end", {})
    seconds = stats["window_s"]
    delta = report.metrics_delta(start.get("metrics", {}), end.get("metrics", {}))
    server_tokens = report.family_total(delta, report.NEXT_TOKENS)

    def pct(key: str) -> float | None:
        if key not in start or key not in end:
            return None
        return round(100 * (end[key] - start[key]) / seconds, 1)

    return {
        "route": route,
        "concurrency": concurrency,
        "batch_size": batch_size,
        **stats,
        "ratio_to_st": report.ratio(stats["tokens_per_s"], work.st_best),
        "padding_efficiency": report.padding_efficiency(delta),
        "server_tokens_per_s": round(server_tokens / seconds, 1) if server_tokens else None,
        "server_cpu_pct": pct("server_cpu_s"),
        "client_cpu_pct": pct("client_cpu_s"),
    }


def measure_server(
    server: Server,
    plan: Plan,
    work: Workload,
    routes: Sequence[str],
    concurrencies: Sequence[int],
    kind: str,
    flags: str,
    records: list[dict[str, Any]],
) -> None:
    """Start (if needed), measure and stop one server; its record joins `records` first,
    so whatever was measured survives a failure or Ctrl-C."""
    started = time.perf_counter()
    record: dict[str, Any] = {
        "label": server.label,
        "kind": kind,
        "flags": flags,
        "command": display(server.command),
        "idle": {},
        "stages": [],
    }
    records.append(record)
    try:
        if server.process is None:
            server.launch()
        server.wait_healthy()
        record["startup_s"] = round(server.startup_s, 2)
        log(f"[{server.label}] healthy after {server.startup_s:.1f} s: {record['command']}")
        if kind == "tei-bento":  # while the server idles: nothing competes
            checkout = Path(server.env["PYTHONPATH"]) if "PYTHONPATH" in server.env else None
            record["own_forward"] = own_forward(work, shlex.split(flags), plan.bare_repeats, checkout)
            if checkout is not None:
                record["checkout"] = str(checkout)
            log(f"[{server.label}] own forward pass: {record['own_forward']}")
        asyncio.run(drive(server, plan, work, routes, concurrencies, kind == "tei-bento", record))
    except Exception as exc:  # noqa: BLE001 - one broken config must not lose the others
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["log_tail"] = server.log()
        log(f"[{server.label}] FAILED: {record['error']} (server log: {server.log_path})")
    finally:
        server.stop()
        assert server.sampler is not None
        record["peak_rss_mib"] = round(server.sampler.peak() / 2**20, 1)
        record["elapsed_s"] = round(time.perf_counter() - started, 1)
        if "error" not in record:
            server.log_path.unlink(missing_ok=True)


def own_forward(
    work: Workload, flags: list[str], repeats: int, checkout: Path | None = None
) -> dict[str, Any]:
    """The config's own network on the idle text, timed in a separate process (run from
    the config's checkout, whose bench.own_forward knows its own engine)."""
    import json
    import subprocess

    command = [sys.executable, "-m", "bench.own_forward", "--model-id", work.model_id]
    command += [*flags, "--text", work.idle_text, "--repeats", str(repeats)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, check=False,
        cwd=checkout or REPO, env=checkout_env(checkout),
    )  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the whole run ------------------------------------------------------------------------


def baselines(
    model_id: str, items: list[corpus_mod.Item], plan: Plan, starting: Sequence[Server]
) -> tuple[dict[str, Any], list[int], Path]:
    """Load the model in-process, count tokens, then time encode and the bare forward.

    The `starting` servers load meanwhile (loading only); timing starts once they are
    healthy and idle, so nothing competes with the measurement.
    """
    from bench import baselines as bl

    model_name, folder = bl.resolve_folder(model_id)
    model = bl.load_model(folder)
    texts = [item.text for item in items]
    tokens = bl.token_counts(model, texts)
    for server in starting:
        try:
            server.wait_healthy()
        except RuntimeError as exc:  # recorded again (as the config's error) when measured
            log(f"[{server.label}] did not start: {exc}")
    log(
        f"in-process baseline: encode {plan.st_texts} texts at batch sizes "
        f"{list(plan.st_batch_sizes)}"
    )
    st = bl.measure_encode(
        model, texts[: plan.st_texts], tokens[: plan.st_texts], plan.st_batch_sizes
    )
    for r in st:
        log(
            f"  ST encode bs={r.batch_size}: {r.tokens_per_s:.0f} tok/s "
            f"{r.texts_per_s:.1f} texts/s pad={r.padding_efficiency}"
        )
    bare = bl.bare_forward(model, short_text(items), plan.bare_repeats)
    log(
        f"  bare forward ({bare['tokens']} tokens): median {bare['forward']['median_ms']} ms; "
        f"encode([text]) {bare['encode_one']['median_ms']} ms"
    )
    result = {
        "st": [r.to_dict() for r in st],
        "st_best": bl.best(st).to_dict(),
        "bare_forward": bare,
        "max_length": bl.max_length(model),
        "folder": str(folder),
        "model_name": model_name,
    }
    del model
    gc.collect()
    return result, tokens, folder


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plan = plan_from(args)
    mode = "quick" if args.quick else args.stages
    name = args.name or mode
    configs = args.config or [("default", [])]
    command = "python -m bench.run " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    t0 = time.perf_counter()
    items = corpus_mod.load()
    results: dict[str, Any] = {
        "name": name,
        "mode": mode,
        "command": command,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "plan": plan.__dict__,
        "corpus": {
            "path": "bench/corpus.jsonl",
            "items": len(items),
            "sha256": corpus_mod.sha256() if corpus_mod.CORPUS_PATH.exists() else "",
            "mix": corpus_mod.summary(items),
            "seed": corpus_mod.SEED,
        },
    }
    ports = [free_port() for _ in configs]
    checkouts = dict(args.checkout or [])
    unknown = set(checkouts) - {label for label, _ in configs}
    if unknown:
        raise SystemExit(f"--checkout names no --config: {', '.join(sorted(unknown))}")
    servers = [
        Server(
            label,
            tei_bento_command(port, args.model_id, flags),
            port,
            env=checkout_env(checkouts.get(label)),
        )
        for (label, flags), port in zip(configs, ports)
    ]
    naive: Server | None = None
    if not args.no_naive:
        port = free_port()
        naive = Server("naive", naive_command(port, args.model_id), port)
    try:
        servers[0].launch()  # loads while the harness loads its own copy of the model
        starting = [servers[0]]
        if naive is not None and plan.prelaunch_naive:
            starting.append(naive.launch())
        base, tokens, folder = baselines(args.model_id, items, plan, starting)
        base["elapsed_s"] = round(time.perf_counter() - t0, 1)  # loading included
        results["baseline"] = base
        results["model"] = {
            "id": args.model_id,
            "name": base["model_name"],
            "folder": str(folder),
            "max_length": base["max_length"],
        }
        work = Workload(
            [i.text for i in items],
            tokens,
            base["st_best"]["tokens_per_s"],
            base["bare_forward"]["forward"]["median_ms"],
            short_text(items),
            args.model_id,
        )
        records: list[dict[str, Any]] = results.setdefault("servers", [])
        for server, (_, flags) in zip(servers, configs):
            measure_server(
                server, plan, work, plan.routes, plan.concurrencies, "tei-bento",
                shlex.join(flags), records,
            )  # fmt: skip
        if naive is not None:
            measure_server(
                naive, plan, work, plan.naive_routes, (plan.naive_concurrency,), "naive",
                "FastAPI + uvicorn, model.encode per request", records,
            )  # fmt: skip
    except KeyboardInterrupt:
        results["interrupted"] = True
        log("interrupted: servers stopped; writing what was measured")
    finally:
        for server in [*servers, *([naive] if naive else [])]:
            server.stop()
    if "baseline" not in results:
        return 130
    results.setdefault("servers", [])
    results["elapsed_s"] = round(time.perf_counter() - t0, 1)
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    written = report.write(results, args.out_dir, plots=not args.no_plots)
    log(f"done in {results['elapsed_s']} s")
    for path in written.values():
        print(path)
    return 1 if any("error" in s for s in results["servers"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
