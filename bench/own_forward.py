"""One config's own forward pass, in-process: the floor of that server's idle latency.

The idle-latency target compares a server with sentence-transformers' bare forward pass.
A config that serves a faster network (a TorchScript trace, ONNX Runtime) beats that
floor and so hides what the server itself adds. This times the very network a config
serves, the way the engine runs it (on the model thread, tokenization excluded, padding,
pooling and normalization included), so the report can give both differences.

    python -m bench.own_forward --model-id X --text "..." --repeats 100 [serve flags]
prints one JSON object.

Each timed pass follows a pause as long as the idle-latency client's (`--gap-s`, 50 ms):
on the shared VMs this runs on, a forward pass that starts after 50 ms of idling takes up
to twice as long as one straight after another (the CPU, not the code: a single-threaded
ONNX Runtime session slows the same way), so the floor of an idle request is a forward
pass from idle. The back-to-back figure is reported beside it (`warm_median_ms`).

`corpus_throughput` is the saturated counterpart: the same engine's tokens/s over a corpus
sorted by length and cut into consecutive batches, with no server, queue or padding
beyond what sorting leaves: the ceiling a saturated server of that config could reach.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence

from bench.loadgen import IDLE_GAP_S
from tei_bento.cli import add_settings_arguments, settings_from_args
from tei_bento.engine.batcher import WorkItem
from tei_bento.engine.engine import Engine
from tei_bento.tasks.embedding import EmbedJob


def engine_for(flags: Sequence[str]) -> Engine:
    """The engine `tei-bento serve <flags>` would serve first, built in this process."""
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    return Engine.from_settings(settings_from_args(parser.parse_args(list(flags))).model_settings()[0])


def corpus_throughput(engine: Engine, texts: Sequence[str], batch_size: int = 32, seconds: float = 10.0) -> float:
    """Tokens/s of the engine's own batches over `texts` sorted by length (tokenized
    once, beforehand, as `encode_now` does at start-up), repeated for at least `seconds`."""
    encoded = sorted(engine.tokenizers.encode_now(list(texts), truncate=True), key=lambda e: len(e.ids))
    batches = [
        [WorkItem(e.ids, e.type_ids, EmbedJob(), None, e.prompt_length) for e in encoded[i : i + batch_size]]  # type: ignore[arg-type]
        for i in range(0, len(encoded), batch_size)
    ]
    tokens = sum(len(e.ids) for e in encoded)

    def run() -> float:
        engine._run_batch(batches[len(batches) // 2])  # warm the kernels for a mid length
        passes, start = 0, time.perf_counter()
        while True:
            for batch in batches:
                engine._run_batch(batch)
            passes += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return passes * tokens / elapsed

    return float(engine.batcher.run_now_in_model_thread(run))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.own_forward")
    add_settings_arguments(parser)
    parser.add_argument("--text", required=True)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--gap-s", type=float, default=IDLE_GAP_S)
    args = parser.parse_args(argv)
    engine = Engine.from_settings(settings_from_args(args).model_settings()[0])
    encoding = engine.tokenizers.tokenizer.encode(args.text)
    batch = [WorkItem(encoding.ids, encoding.type_ids, EmbedJob(), None)]  # type: ignore[arg-type]

    def timed(gap_s: float) -> list[float]:
        for _ in range(10):
            engine._run_batch(batch)  # what the batcher runs for a batch of one
        samples = []
        for _ in range(args.repeats):
            time.sleep(gap_s)
            start = time.perf_counter()
            engine._run_batch(batch)
            samples.append((time.perf_counter() - start) * 1000)
        return samples

    samples = sorted(engine.batcher.run_now_in_model_thread(lambda: timed(args.gap_s)))
    warm = engine.batcher.run_now_in_model_thread(lambda: timed(0.0))
    print(
        json.dumps(
            {
                "backend": engine.backend.name,
                "tokens": len(encoding.ids),
                "n": len(samples),
                "median_ms": round(statistics.median(samples), 3),
                "p90_ms": round(samples[int(0.9 * (len(samples) - 1))], 3),
                "gap_s": args.gap_s,
                "warm_median_ms": round(statistics.median(warm), 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
