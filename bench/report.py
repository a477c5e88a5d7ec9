"""Numbers to files: percentiles, /metrics deltas, machine facts, Markdown, JSON, plots.

Why separate: everything here is pure (no server, no model), so tests/bench can check
the maths and the table without timing anything, and a JSON result can be re-rendered
(`python -m bench.report bench/results/cpu.json`) without re-running the benchmark.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

IDLE_OVERHEAD_LIMIT_MS = 3.0  # the project's target: idle latency <= bare forward + 3 ms
OWN_FORWARD_LIMIT_MS = 1.0  # the GPU issue's CPU goal: idle /embed within 1 ms of the backend's own forward
NEXT_TOKENS = "te_batch_next_tokens_sum"
PADDED_TOKENS = "te_batch_padded_tokens_sum"

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)")


# -- maths -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """q-th percentile with linear interpolation between ranks (numpy's default method).

    None for no values, so an empty stage shows as a dash rather than a fake zero.
    """
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    value = ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
    return round(value, 3)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format to {sample name with labels: value}; comments skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line.strip())
        if match:
            try:
                out[match.group(1)] = float(match.group(2))
            except ValueError:
                continue
    return out


def metrics_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """after - before for every sample present in `after` (counters restart from 0)."""
    return {name: value - before.get(name, 0.0) for name, value in after.items()}


def family_total(samples: Mapping[str, float], name: str) -> float | None:
    """A sample summed over its labels (`model`, ...); None when the server has none."""
    found = [v for k, v in samples.items() if k == name or k.startswith(name + "{")]
    return sum(found) if found else None


def padding_efficiency(delta: Mapping[str, float]) -> float | None:
    """Real tokens / tokens computed with padding, over the window; None without data."""
    padded = family_total(delta, PADDED_TOKENS) or 0.0
    if padded <= 0:
        return None
    return round((family_total(delta, NEXT_TOKENS) or 0.0) / padded, 4)


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return round(value / reference, 3)


# -- machine -----------------------------------------------------------------------------


SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
"""The CPU features that change CPU figures (int8 needs VNNI; AMX speeds bf16/int8)."""


def cpu_flags() -> list[str]:
    """Which of SPEED_FLAGS this CPU has (lscpu's flags, from /proc/cpuinfo)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in SPEED_FLAGS if flag in present]
    except OSError:
        pass
    return []


def machine() -> dict[str, Any]:
    """What a reader needs to compare numbers: CPU, cores, memory, library versions."""
    cpu = platform.processor() or platform.machine()
    mem_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        usable = os.cpu_count()
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str] = {}
    for name in ("torch", "transformers", "sentence-transformers", "tei-bento", "aiohttp"):
        try:
            versions[name.replace("-", "_")] = version(name)
        except PackageNotFoundError:
            versions[name.replace("-", "_")] = "not installed"
    import torch

    return {
        "cpu": cpu,
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": mem_gib,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# -- Markdown ----------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def describe_machine(m: Mapping[str, Any]) -> str:
    v = m.get("versions", {})
    return (
        f"{m.get('cpu')}, {m.get('usable_cores')} usable cores of {m.get('cores')}, "
        f"{m.get('memory_gib')} GiB RAM; {m.get('platform')}; Python {m.get('python')}, "
        f"torch {v.get('torch', '?')} ({m.get('torch_threads')} threads), "
        f"sentence-transformers {v.get('sentence_transformers', '?')}, "
        f"tei-bento {v.get('tei_bento', '?')}; load average {_load(m)}"
    )


def _load(m: Mapping[str, Any]) -> str:
    """1-minute load average at start and end: a busy machine shows up here."""
    start, end = m.get("load_average_at_start"), m.get("load_average_at_end")
    parts = [
        f"{label} {values[0]:.2f}" for label, values in (("start", start), ("end", end)) if values
    ]
    return ", ".join(parts) or "unknown"


def render_markdown(results: Mapping[str, Any]) -> str:
    """The README-ready report: machine, command, baselines, idle check, stage tables."""
    name = results["name"]
    base = results["baseline"]
    st_best = base["st_best"]
    corpus = results["corpus"]
    model = results["model"].get("name") or results["model"]["id"]
    sha = corpus["sha256"][:12]
    plural = {"query": "queries", "passage": "passages", "document": "documents"}
    kinds = ", ".join(f"{v['count']} {plural.get(k, k)}" for k, v in corpus["mix"].items())
    out = [
        f"## Benchmark `{name}` ({results['mode']})",
        "",
        f"* Machine: {describe_machine(results['machine'])}",
        f"* Model: `{model}` (max {results['model']['max_length']} tokens)",
        f"* Corpus: `bench/corpus.jsonl`, {corpus['items']} texts ({kinds}), sha256 `{sha}`",
        f"* Command: `{results['command']}`",
        f"* Date: {results['created']}",
        *(
            ["* **Interrupted**: the tables hold what was measured before Ctrl-C."]
            if results.get("interrupted")
            else []
        ),
        *[
            f"* **{srv['label']} failed**: {srv['error']}"
            for srv in results["servers"]
            if srv.get("error")
        ],
        "",
        "### In-process baseline: `SentenceTransformer.encode`",
        "",
        *_table(
            ["batch size", "texts/s", "tokens/s", "padding efficiency"],
            [
                (
                    r["batch_size"],
                    _fmt(r["texts_per_s"]),
                    _fmt(r["tokens_per_s"], 0),
                    _fmt(r["padding_efficiency"], 3),
                )
                for r in base["st"]
            ],
        ),
        "",
        (
            f"Best: batch size {st_best['batch_size']}, {_fmt(st_best['tokens_per_s'], 0)} "
            f"tokens/s (over {st_best['texts']} texts). Server tokens/s below are also given "
            "as × this."
        ),
        "",
        "### Idle latency: one short text, nothing else running",
        "",
    ]
    bare = base["bare_forward"]
    out += [
        (
            f'Text: "{bare["text"]}" ({bare["tokens"]} tokens). Bare forward pass '
            f"in-process: median {_fmt(bare['forward']['median_ms'], 2)} ms "
            f"(whole `encode([text])`: {_fmt(bare['encode_one']['median_ms'], 2)} ms)."
        ),
        "",
    ]
    idle_rows = []

    def _within(value: float | None, limit: float) -> str:
        return "yes" if value is not None and value <= limit else "**no**"

    for server in results["servers"]:
        for route, idle in server.get("idle", {}).items():
            overhead = idle["overhead_ms"]
            ok = overhead is not None and overhead <= IDLE_OVERHEAD_LIMIT_MS
            idle_rows.append(
                (
                    server["label"],
                    f"`{route}`",
                    idle["n"],
                    _fmt(idle["median_ms"], 2),
                    _fmt(idle["p90_ms"], 2),
                    _fmt(overhead, 2),
                    "yes" if ok else "**no**",
                    _fmt(server.get("own_forward", {}).get("median_ms"), 2),
                    _fmt(idle.get("overhead_own_ms"), 2),
                    _within(idle.get("overhead_own_ms"), OWN_FORWARD_LIMIT_MS),
                )
            )
    out += _table(
        [
            "server",
            "route",
            "n",
            "median ms",
            "p90 ms",
            "median − bare forward (ms)",
            f"≤ {IDLE_OVERHEAD_LIMIT_MS:g} ms",
            "own forward ms (after the same pause)",
            "median − own forward (ms)",
            f"≤ {OWN_FORWARD_LIMIT_MS:g} ms",
        ],
        idle_rows,
    )
    out += ["", "### Throughput and latency under load (closed loop)", ""]
    rows = []
    for server in results["servers"]:
        for s in server["stages"]:
            measured = s.get("requests_ok", 1) > 0  # nothing finished: no rate, not zero
            rows.append(
                (
                    server["label"],
                    f"`{s['route']}`",
                    s["concurrency"],
                    s["batch_size"],
                    _fmt(s["tokens_per_s"] if measured else None, 0),
                    _fmt(s["ratio_to_st"] if measured else None, 2),
                    _fmt(s["requests_per_s"] if measured else None),
                    _fmt(s["p50_ms"]),
                    _fmt(s["p90_ms"]),
                    _fmt(s["p99_ms"]),
                    s["status_429"],
                    s["errors"],
                    _fmt(s["padding_efficiency"], 3),
                    _fmt(s["peak_rss_mib"], 0),
                )
            )
    out += _table(
        [
            "server",
            "route",
            "clients",
            "texts/req",
            "tokens/s",
            "× ST best",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "429",
            "errors",
            "padding eff.",
            "peak RSS MiB",
        ],
        rows,
    )
    comparisons = results.get("comparisons", [])
    if comparisons:
        c = comparisons[0]["concurrency"]
        out += ["", f"### tei-bento vs naive FastAPI server at {c} clients (`/embed`)", ""]
        out += _table(
            [
                "config",
                "texts/req",
                "tokens/s",
                "naive tokens/s",
                "speed-up",
                "p50 / p99 ms",
                "naive p50 / p99 ms",
            ],
            [
                (
                    x["config"],
                    x["batch_size"],
                    _fmt(x["tokens_per_s"], 0),
                    _fmt(x["naive_tokens_per_s"], 0),
                    f"{_fmt(x['speedup'], 2)}×" if x["speedup"] else "–",
                    f"{_fmt(x['p50_ms'])} / {_fmt(x['p99_ms'])}",
                    f"{_fmt(x['naive_p50_ms'])} / {_fmt(x['naive_p99_ms'])}",
                )
                for x in comparisons
            ],
        )
    plots = results.get("plots", [])
    if plots:
        out += [""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    out += [
        "",
        (
            "tokens/s: real tokens (model tokenizer, truncated at the max length, specials "
            "included) of successful requests completed in the measurement window. Latency: "
            "successful requests started in the window. Padding efficiency: real / computed "
            "tokens from the server's /metrics over the window. Peak RSS: server process tree."
        ),
        "",
    ]
    return "\n".join(out)


# -- comparisons -------------------------------------------------------------------------


def _rate(stage: Mapping[str, Any]) -> float | None:
    """tokens/s, or None when no request finished in the window (no rate, not zero)."""
    return stage["tokens_per_s"] if stage.get("requests_ok", 1) > 0 else None


def naive_comparisons(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each tei-bento config vs the naive server, same route, clients and batch size."""
    naive = next((s for s in results["servers"] if s["kind"] == "naive"), None)
    if naive is None:
        return []
    out = []
    for ref in naive["stages"]:
        for server in results["servers"]:
            if server["kind"] != "tei-bento":
                continue
            for s in server["stages"]:
                same = (s["route"], s["concurrency"], s["batch_size"])
                if same == (ref["route"], ref["concurrency"], ref["batch_size"]):
                    out.append(
                        {
                            "config": server["label"],
                            "route": s["route"],
                            "concurrency": s["concurrency"],
                            "batch_size": s["batch_size"],
                            "tokens_per_s": _rate(s),
                            "naive_tokens_per_s": _rate(ref),
                            "speedup": ratio(_rate(s), _rate(ref)),
                            "p50_ms": s["p50_ms"],
                            "p99_ms": s["p99_ms"],
                            "naive_p50_ms": ref["p50_ms"],
                            "naive_p99_ms": ref["p99_ms"],
                        }
                    )
    return out


# -- files -------------------------------------------------------------------------------


def write(results: dict[str, Any], out_dir: Path, plots: bool = True) -> dict[str, Path]:
    """JSON, plots, then Markdown (which links the plots); returns what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results["comparisons"] = naive_comparisons(results)
    name = results["name"]
    written: dict[str, Path] = {}
    if plots:
        try:
            from bench.plots import plot

            paths = plot(results, out_dir)
            results["plots"] = [str(p.relative_to(out_dir)) for p in paths]
            written.update({p.stem: p for p in paths})
        except ImportError:
            results["plots"] = []  # matplotlib missing: `pip install -e .[bench]`
    json_path = out_dir / f"{name}.json"
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    md_path = out_dir / f"{name}.md"
    md_path.write_text(render_markdown(results))
    written.update(json=json_path, markdown=md_path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report", description="Re-render a result JSON (Markdown, plots)."
    )
    parser.add_argument("json", type=Path)
    args = parser.parse_args(argv)
    results = json.loads(args.json.read_text())
    for path in write(results, args.json.parent).values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
