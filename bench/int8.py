"""int8 on this CPU: speed and accuracy in one run.

    python -m bench.int8 [--seconds 20] [--rounds 2] [--limit N]

Serves all-MiniLM-L6-v2 twice, one after the other (`tei-bento serve` default float32, then
`--quantize int8`), drives each with 32 closed-loop clients x 8 corpus texts, and times
in-process `SentenceTransformer.encode` (batch 32) on the same corpus between them, and
each config's own engine in this process over the corpus sorted by length (batches of 32:
the ceiling its server could reach, `bench.own_forward.corpus_throughput`); every
corpus text is then embedded through the int8 server and compared with float32
sentence-transformers (min and mean cosine). Records the CPU's flags (VNNI decides whether
int8 weights take the fast int32 path). Writes bench/results/int8.{json,md}. Run it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

from bench import loadgen
from bench.baselines import load_model, resolve_folder, token_counts
from bench.corpus import load as load_corpus
from bench.own_forward import corpus_throughput, engine_for
from bench.report import machine
from bench.servers import Server, free_port, tei_bento_command
from tei_bento.settings import DEFAULT_MODEL

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS = {"float32": [], "int8": ["--quantize", "int8"]}


def serve(flags: list[str], folder: Path) -> Server:
    port = free_port()
    return Server(" ".join(flags) or "default", tei_bento_command(port, str(folder), flags), port).launch().wait_healthy(600)


def saturated(url: str, texts: list[str], counts: list[int], seconds: float) -> float:
    batch = loadgen.make_requests("/embed", texts, counts, batch_size=8)
    run = asyncio.run(loadgen.run_stage(url, "/embed", batch, concurrency=32, duration_s=seconds, warmup_s=3.0, max_requests=1_000_000))
    stats = loadgen.window_stats(run)
    assert stats["errors"] == 0, stats
    return stats["tokens_per_s"]


def served_vectors(url: str, texts: list[str], per_request: int = 32) -> np.ndarray:
    out: list[list[float]] = []
    session = requests.Session()
    for i in range(0, len(texts), per_request):
        answer = session.post(f"{url}/embed", json={"inputs": texts[i : i + per_request], "truncate": True}, timeout=120)
        answer.raise_for_status()
        out += answer.json()
    return np.asarray(out, dtype=np.float32)


def own_throughput(flags: list[str], folder: Path, texts: list[str], seconds: float) -> float:
    """The config's own engine in this process over length-sorted batches of 32."""
    engine = engine_for(["--model-id", str(folder), *flags])
    try:
        return corpus_throughput(engine, texts, batch_size=32, seconds=seconds)
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="corpus texts (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    _, folder = resolve_folder(DEFAULT_MODEL)  # the bundled all-MiniLM-L6-v2
    texts = [item.text for item in load_corpus()][: args.limit]
    model = load_model(folder)
    counts = token_counts(model, texts)
    reference = model.encode(texts, batch_size=32, normalize_embeddings=True)
    rates: dict[str, list[float]] = {"encode": [], **{name: [] for name in CONFIGS}, **{f"{name} own": [] for name in CONFIGS}}
    cosines: dict[str, float] = {}
    for _ in range(args.rounds):  # alternate, so drift on a shared machine hits every side
        for name, flags in CONFIGS.items():
            server = serve(flags, folder)
            try:
                rates[name].append(saturated(server.url, texts, counts, args.seconds))
                if name == "int8" and not cosines:
                    # Dynamic int8 shares one activation scale per tensor across the batch, so a
                    # text's vector depends on its neighbours: measured batched and alone.
                    for label, per_request in (("", 32), ("alone_", 1)):
                        got = served_vectors(server.url, texts, per_request)
                        cos = (got * reference).sum(1) / np.linalg.norm(got, axis=1)
                        cosines |= {f"{label}min": float(cos.min()), f"{label}mean": float(cos.mean())}
            finally:
                server.stop()
            rates[f"{name} own"].append(own_throughput(flags, folder, texts, args.seconds / 2))
            start = time.perf_counter()
            model.encode(texts, batch_size=32)
            rates["encode"].append(sum(counts) / (time.perf_counter() - start))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    results: dict[str, Any] = {
        "command": "python -m bench.int8 " + " ".join(sys.argv[1:] if argv is None else argv), "machine": machine(), "texts": len(texts),
        "tokens": sum(counts), "tokens_per_s": rates, "medians": medians, "int8_cosine_to_float32": cosines,
        "int8_vs_encode": medians["int8"] / medians["encode"], "float32_vs_encode": medians["float32"] / medians["encode"],
        "int8_vs_float32": medians["int8"] / medians["float32"],
        "server_vs_own": {name: medians[name] / medians[f"{name} own"] for name in CONFIGS},
    }  # fmt: skip
    m = results["machine"]
    lines = [
        "# int8 on this CPU: speed and accuracy, one run", "",
        f"`{results['command'].strip()}`; {m.get('cpu')} ({m.get('cores')} cores; flags: {', '.join(m.get('cpu_flags', []))}).", "",
        f"{len(texts)} corpus texts ({sum(counts):,} tokens); 32 clients x 8 texts on `/embed`; {args.rounds} alternating rounds, medians.", "",
        "| side | tokens/s | x encode | server x its own engine |", "|---|---|---|---|",
        f"| encode (sentence-transformers, batch 32) | {medians['encode']:,.0f} | 1.00x | |",
        *(
            row
            for name in CONFIGS
            for row in (
                f"| {name} server | {medians[name]:,.0f} | {medians[name] / medians['encode']:.2f}x | {results['server_vs_own'][name]:.2f}x |",
                f"| {name} own engine in-process, length-sorted batches of 32 | {medians[name + ' own']:,.0f} | {medians[name + ' own'] / medians['encode']:.2f}x | |",
            )
        ),
        "", "int8 cosine to float32 sentence-transformers over every text:",
        f"- sent 32 per request (batched with neighbours): min {cosines['min']:.4f}, mean {cosines['mean']:.4f}",
        f"- sent one per request (a batch of its own): min {cosines['alone_min']:.4f}, mean {cosines['alone_mean']:.4f}",
        "", "Dynamic int8 quantizes each matmul's input with one scale for the whole batch tensor (padding",
        "included), so a text's int8 vector depends on what it is batched with.",
    ]  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "int8.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
