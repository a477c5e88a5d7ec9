"""`embed-corpus --ray`: the same job on Ray Data, for corpora past one machine.

`ray.data.read_json / read_csv / read_parquet / read_text` -> `map_batches` with an actor class
that holds one engine per worker (one GPU each with `--ray-num-gpus 1`, `--ray-concurrency`
workers) -> `write_parquet`. Ray Data reads in parallel and has no global row number, so a row's
id is its `--id-field` (rows have no id without one); order is preserved. Rows whose text is
missing or empty are left out (`--on-bad-row skip`) or fail the run. Vectors are the engine's,
exactly as in-process.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from tei_bento.corpus.embedders import EmbedOptions, InProcessEmbedder

READERS = {"jsonl": "read_json", "csv": "read_csv", "parquet": "read_parquet", "text": "read_text"}


class EmbedActor:
    """One engine per Ray worker; each batch goes through its token-budget batcher."""

    def __init__(self, settings: Any, options: EmbedOptions, text_field: str, id_field: str | None, keep_text: bool, on_bad_row: str) -> None:
        self.loop = asyncio.new_event_loop()  # the engine's batcher lives on this loop
        self.embedder = InProcessEmbedder(settings, options)
        self.text_field, self.id_field, self.keep_text, self.on_bad_row = text_field, id_field, keep_text, on_bad_row

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        texts = batch.column(self.text_field).to_pylist()
        good = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
        if len(good) < len(texts) and self.on_bad_row == "fail":
            bad = next(i for i in range(len(texts)) if i not in set(good))
            raise ValueError(f"a row without text: {batch.slice(bad, 1).to_pylist()[0]} (--on-bad-row skip leaves such rows out)")
        chosen = [texts[i] for i in good]
        vectors = self.loop.run_until_complete(self.embedder.embed(chosen, lambda *_: None)) if chosen else []
        flat = np.stack(vectors) if vectors else np.zeros((0, self.embedder.engine.task.embedding_size or 0), dtype=np.float32)
        columns: dict[str, Any] = {}
        if self.id_field:
            columns["id"] = batch.column(self.id_field).take(pa.array(good, type=pa.int64()))
        if self.keep_text:
            columns["text"] = pa.array(chosen, type=pa.string())
        columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
        return pa.table(columns)


def run_on_ray(
    input_path: Path,
    output: Path,
    fmt: str,
    settings: Any,
    options: EmbedOptions,
    *,
    text_field: str = "text",
    id_field: str | None = None,
    keep_text: bool = False,
    on_bad_row: str = "fail",
    address: str | None = None,
    num_cpus: int | None = None,
    concurrency: int = 1,
    num_gpus: float = 0,
    batch_size: int = 1024,
) -> dict[str, Any]:
    import pyarrow.parquet as pq
    import ray

    if not ray.is_initialized():
        ray.init(address=address, num_cpus=None if address else num_cpus, ignore_reinit_error=True, log_to_driver=False)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    dataset = getattr(ray.data, READERS[fmt])(str(input_path))
    if fmt == "text":
        text_field = "text"
    embedded = dataset.map_batches(
        EmbedActor,
        fn_constructor_args=(settings, options, text_field, id_field, keep_text, on_bad_row),
        batch_format="pyarrow",
        batch_size=batch_size,
        concurrency=concurrency,
        num_gpus=num_gpus or None,
    )
    started = time.perf_counter()
    embedded.write_parquet(str(output))  # the whole pipeline runs here, streaming
    seconds = time.perf_counter() - started
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in output.glob("*.parquet"))
    return {"output": str(output), "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "ray": ray.cluster_resources()}
