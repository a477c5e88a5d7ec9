"""The embed-corpus job: rows in shards of `shard_size`, each shard embedded and written to
`part-NNNNN.parquet` atomically (a temporary file renamed), so a killed run leaves only whole
shards behind and a re-run skips them and produces the same files.

Memory stays bounded: rows are read as a stream, and at most one shard's rows and vectors
are held at a time (`Summary.most_rows_held` reports it). A manifest (`_manifest.json`)
records what the shards were made from; a re-run with other inputs or options refuses to mix
them in (pass `--overwrite` to start again).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tei_bento.corpus.embedders import EmbedOptions, Embedder
from tei_bento.corpus.readers import Row, count_rows, read_rows

log = logging.getLogger(__name__)
MANIFEST = "_manifest.json"


class BadRowError(Exception):
    """A bad row with --on-bad-row fail: the line and why."""


@dataclass
class CorpusJob:
    input: Path
    output: Path
    fmt: str
    text_field: str = "text"
    id_field: str | None = None
    keep_text: bool = False
    shard_size: int = 10_000
    on_bad_row: str = "fail"  # or "skip"
    options: EmbedOptions = field(default_factory=EmbedOptions)
    overwrite: bool = False
    progress_bar: bool = True

    def shard_path(self, index: int) -> Path:
        return self.output / f"part-{index:05d}.parquet"

    def manifest(self, model: str) -> dict[str, Any]:
        stat = self.input.stat()
        return {
            "input": str(self.input.resolve()),
            "input_size": stat.st_size,
            "input_sha256_head": _head_digest(self.input),
            "format": self.fmt,
            "text_field": self.text_field,
            "id_field": self.id_field,
            "keep_text": self.keep_text,
            "shard_size": self.shard_size,
            "on_bad_row": self.on_bad_row,
            "model": model,
            **self.options.fingerprint(),
        }


@dataclass
class Summary:
    rows: int = 0
    embedded: int = 0
    skipped_bad: int = 0
    shards_written: int = 0
    shards_reused: int = 0
    tokens: int = 0
    seconds: float = 0.0
    most_rows_held: int = 0
    bad_rows: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bad_rows"] = self.bad_rows[:20]
        data["texts_per_s"] = round(self.embedded / self.seconds, 1) if self.seconds else None
        data["tokens_per_s"] = round(self.tokens / self.seconds, 1) if self.seconds else None
        return data


def _head_digest(path: Path, size: int = 1 << 20) -> str:
    with path.open("rb") as f:
        return hashlib.sha256(f.read(size)).hexdigest()


def _check_manifest(job: CorpusJob, wanted: dict[str, Any]) -> None:
    job.output.mkdir(parents=True, exist_ok=True)
    file = job.output / MANIFEST
    if file.is_file() and not job.overwrite:
        found = json.loads(file.read_text())
        if found != wanted:
            changed = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
            raise SystemExit(
                f"tei-bento: {job.output} holds shards made with other settings ({', '.join(changed)}); "
                "pass --overwrite to start again, or another output folder"
            )
    if job.overwrite:
        for old in job.output.glob("part-*.parquet"):
            old.unlink()
    file.write_text(json.dumps(wanted, indent=2) + "\n")


def write_shard(path: Path, rows: list[Row], vectors: list[np.ndarray], keep_text: bool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = [r.id for r in rows]
    id_type = pa.int64() if all(isinstance(i, int) for i in ids) else pa.string()
    flat = np.stack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
    value_type = pa.from_numpy_dtype(flat.dtype)
    columns = {
        "id": pa.array(ids if id_type == pa.int64() else [str(i) for i in ids], type=id_type),
        "line": pa.array([r.line for r in rows], type=pa.int64()),
    }
    if keep_text:
        columns["text"] = pa.array([r.text for r in rows], type=pa.string())
    if flat.size:
        values = pa.array(flat.reshape(-1), type=value_type)
        columns["vector"] = pa.FixedSizeListArray.from_arrays(values, flat.shape[1])
    else:
        columns["vector"] = pa.array([], type=pa.list_(value_type))
    temporary = path.with_suffix(".parquet.tmp")
    pq.write_table(pa.table(columns), temporary)
    os.replace(temporary, path)  # whole shards only, even if killed


async def run_job(job: CorpusJob, embedder: Embedder) -> Summary:
    from tqdm import tqdm

    await embedder.prepare()
    _check_manifest(job, job.manifest(embedder.name))
    summary = Summary()
    started = time.perf_counter()
    total = count_rows(job.input, job.fmt)
    bar = tqdm(total=total, unit="text", disable=not job.progress_bar, dynamic_ncols=True, desc="embed-corpus")

    def progress(texts: int, tokens: int) -> None:
        summary.tokens += tokens
        summary.embedded += texts
        bar.update(texts)
        elapsed = time.perf_counter() - started
        bar.set_postfix(tokens_per_s=f"{summary.tokens / elapsed:,.0f}", refresh=False)

    shard: list[Row] = []
    index = 0

    async def flush() -> None:
        nonlocal shard, index
        path = job.shard_path(index)
        good = [r for r in shard if r.text is not None]
        summary.most_rows_held = max(summary.most_rows_held, len(shard))
        if path.is_file():
            summary.shards_reused += 1
            bar.update(len(good))
        else:
            vectors = await embedder.embed([r.text for r in good], progress) if good else []  # type: ignore[misc]
            write_shard(path, good, vectors, job.keep_text)
            summary.shards_written += 1
        bar.update(len(shard) - len(good))
        shard, index = [], index + 1

    try:
        for row in read_rows(job.input, job.fmt, job.text_field, job.id_field):
            summary.rows += 1
            if row.text is None:
                message = f"{job.input}:{row.line}: {row.problem}"
                if job.on_bad_row == "fail":
                    raise BadRowError(message + " (--on-bad-row skip leaves such rows out)")
                summary.skipped_bad += 1
                summary.bad_rows.append(message)
                log.warning("skipped %s", message)
            shard.append(row)
            if len(shard) == job.shard_size:
                await flush()
        if shard:
            await flush()
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - started
    return summary


def run(job: CorpusJob, embedder_factory) -> Summary:
    async def main() -> Summary:
        embedder = embedder_factory()
        try:
            return await run_job(job, embedder)
        finally:
            await embedder.close()

    return asyncio.run(main())
