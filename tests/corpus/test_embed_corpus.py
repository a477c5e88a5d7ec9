"""`tei-bento embed-corpus`: every format, in-process and against a server, equal to
sentence-transformers; bad rows; resumable after a kill; one shard in memory at a time."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tei_bento.corpus.embedders import EmbedOptions, InProcessEmbedder
from tests.reference import assert_same_vectors
from tests.server import REPO
from tests.server import test_env as server_env

TEXTS = [f"passage {i}: the {['cat', 'dog', 'sea', 'sky'][i % 4]} is {'very ' * (i % 5)}nice" for i in range(57)]


def read_output(folder: Path) -> dict[str, list]:
    import pyarrow.parquet as pq

    table = pq.read_table(sorted(folder.glob("part-*.parquet")))
    return table.to_pydict()


LOOP = asyncio.new_event_loop()  # the engine's batcher lives on the loop that first used it


@pytest.fixture(scope="module")
def embedder():
    """One in-process engine for the module's jobs (the CLI builds the same one)."""
    from tei_bento.settings import Settings

    engine = InProcessEmbedder(Settings(), EmbedOptions())
    yield engine
    LOOP.run_until_complete(engine.close())


def run_job(embedder, input_path: Path, output: Path, **kwargs):
    from tei_bento.corpus.job import CorpusJob, run_job as run_async
    from tei_bento.corpus.readers import detect_format

    options = kwargs.pop("options", EmbedOptions())
    embedder.options = options
    job = CorpusJob(input_path, output, detect_format(input_path, kwargs.pop("fmt", None)), progress_bar=False, options=options, **kwargs)
    return LOOP.run_until_complete(run_async(job, embedder))


def write_jsonl(path: Path, texts: list[str], bad_lines: dict[int, str] | None = None) -> Path:
    lines = [json.dumps({"text": t, "doc": f"d{i}"}) for i, t in enumerate(texts)]
    for at, line in sorted((bad_lines or {}).items()):
        lines.insert(at, line)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jsonl_with_bad_rows_skipped_equals_sentence_transformers(embedder, tmp_path, minilm_reference):
    path = write_jsonl(tmp_path / "c.jsonl", TEXTS, {3: "not json", 10: '{"text": ""}', 20: '{"other": 1}', 30: "[1, 2]"})
    summary = run_job(embedder, path, tmp_path / "out", shard_size=16, on_bad_row="skip", id_field="doc", keep_text=True)
    out = read_output(tmp_path / "out")
    assert out["text"] == TEXTS and out["id"] == [f"d{i}" for i in range(len(TEXTS))]
    assert_same_vectors(out["vector"], minilm_reference.encode(TEXTS))
    assert summary.skipped_bad == 4 and summary.embedded == len(TEXTS)
    assert summary.bad_rows[0] == f"{path}:4: not JSON: Expecting value"  # line numbers from 1
    assert "11: `text` is empty" in summary.bad_rows[1] and "21: no `text` field" in summary.bad_rows[2]
    assert summary.most_rows_held <= 16  # one shard at a time
    assert len(list((tmp_path / "out").glob("part-*.parquet"))) == 4  # 61 rows / 16


def test_a_bad_row_fails_the_run_with_its_line(embedder, tmp_path):
    from tei_bento.corpus.job import BadRowError

    path = write_jsonl(tmp_path / "c.jsonl", TEXTS[:5], {2: '{"text": 5}'})
    with pytest.raises(BadRowError, match=r"c.jsonl:3: `text` is not a string: int"):
        run_job(embedder, path, tmp_path / "out", shard_size=2)


def test_text_csv_and_parquet_give_the_same_vectors(embedder, tmp_path, minilm_reference):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "c.txt").write_text("\n".join(TEXTS) + "\n")
    with (tmp_path / "c.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["key", "body"])
        writer.writerows([i, t] for i, t in enumerate(TEXTS))
    pq.write_table(pa.table({"body": TEXTS}), tmp_path / "c.parquet")
    want = minilm_reference.encode(TEXTS)
    for name, field in (("c.txt", "text"), ("c.csv", "body"), ("c.parquet", "body")):
        run_job(embedder, tmp_path / name, tmp_path / f"out-{name}", shard_size=25, text_field=field)
        out = read_output(tmp_path / f"out-{name}")
        assert out["id"] == list(range(len(TEXTS))), name
        assert_same_vectors(out["vector"], want)


def test_quantized_vectors_and_a_changed_run_is_refused(embedder, tmp_path, minilm_reference):
    from sentence_transformers.util.quantization import quantize_embeddings

    path = write_jsonl(tmp_path / "c.jsonl", TEXTS)
    run_job(embedder, path, tmp_path / "out", shard_size=20, options=EmbedOptions(embedding_type="ubinary"))
    got = np.asarray(read_output(tmp_path / "out")["vector"], dtype=np.uint8)
    assert np.array_equal(got, quantize_embeddings(minilm_reference.encode(TEXTS), "ubinary"))
    with pytest.raises(SystemExit, match="embedding_type"):
        run_job(embedder, path, tmp_path / "out", shard_size=20)


def cli(*args: str, url: str | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "tei_bento.cli", "embed-corpus", *args, "--no-progress"]
    return subprocess.Popen(command, cwd=REPO, env=server_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_cli_against_a_server_equals_in_process(embedder, tmp_path, default_server, minilm_reference):
    path = write_jsonl(tmp_path / "c.jsonl", TEXTS)
    process = cli(str(path), str(tmp_path / "remote"), "--url", default_server.url, "--shard-size", "30")
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["embedded"] == len(TEXTS) and summary["tokens"] > 0 and summary["tokens_per_s"] > 0
    run_job(embedder, path, tmp_path / "local", shard_size=30)
    remote, local = read_output(tmp_path / "remote"), read_output(tmp_path / "local")
    assert remote["id"] == local["id"]
    assert_same_vectors(remote["vector"], np.asarray(local["vector"]), min_cosine=0.99999, atol=1e-5)
    assert_same_vectors(remote["vector"], minilm_reference.encode(TEXTS))


def test_resumes_after_a_kill_and_produces_the_same_output(tmp_path):
    texts = [f"row {i} of a corpus long enough to be killed midway, about {i % 13}" for i in range(2400)]
    path = write_jsonl(tmp_path / "big.jsonl", texts)
    killed = cli(str(path), str(tmp_path / "out"), "--shard-size", "100")
    deadline = time.monotonic() + 240
    while not (tmp_path / "out" / "part-00003.parquet").exists():
        assert killed.poll() is None, killed.stderr.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    done_before = {p.name for p in (tmp_path / "out").glob("part-*.parquet")}
    assert len(done_before) < 24  # killed midway
    resumed = cli(str(path), str(tmp_path / "out"), "--shard-size", "100")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["shards_reused"] >= len(done_before) - 1 and summary["shards_written"] + summary["shards_reused"] == 24
    assert not list((tmp_path / "out").glob("*.tmp"))
    whole = cli(str(path), str(tmp_path / "whole"), "--shard-size", "100")
    assert whole.wait(timeout=600) == 0
    resumed_out, whole_out = read_output(tmp_path / "out"), read_output(tmp_path / "whole")
    assert resumed_out["id"] == whole_out["id"] == list(range(2400))
    np.testing.assert_allclose(np.asarray(resumed_out["vector"]), np.asarray(whole_out["vector"]), atol=1e-5)


def test_on_ray_data_equals_the_single_process_path(tmp_path, embedder):
    """A local Ray cluster (2 CPUs) started by the run: read_json -> map_batches (one engine
    per worker) -> write_parquet; the vectors by id equal the in-process job's."""
    pytest.importorskip("ray")
    path = write_jsonl(tmp_path / "c.jsonl", TEXTS)
    process = cli(str(path), str(tmp_path / "ray"), "--ray", "--ray-num-cpus", "2", "--id-field", "doc")
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    run_job(embedder, path, tmp_path / "local", shard_size=30, id_field="doc")
    import pyarrow.parquet as pq

    on_ray = pq.read_table(sorted((tmp_path / "ray").glob("*.parquet"))).to_pydict()
    local = read_output(tmp_path / "local")
    assert on_ray["id"] == local["id"] == [f"d{i}" for i in range(len(TEXTS))]
    np.testing.assert_allclose(np.asarray(on_ray["vector"]), np.asarray(local["vector"]), atol=1e-5)


def test_memory_stays_within_a_budget_smaller_than_the_corpus(embedder, tmp_path):
    """A 10 MB corpus through a 2 MB budget of Python allocations (tracemalloc: the rows'
    strings, ids and vectors): the job streams shards, it never holds the corpus. Loading
    the file, or keeping every shard's rows, would pass the budget several times over."""
    import tracemalloc

    import pyarrow as pa

    row = "a long passage about the sea and the sky, repeated to fill a page. " * 600  # ~40 KB
    texts = [f"{i} {row}" for i in range(250)]
    path = write_jsonl(tmp_path / "big.jsonl", texts)
    corpus_bytes = path.stat().st_size
    budget = 2 * 2**20
    assert corpus_bytes > 4 * budget
    run_job(embedder, write_jsonl(tmp_path / "warm.jsonl", texts[:3]), tmp_path / "warm")  # lazy imports (pandas)
    pool_before = pa.total_allocated_bytes()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        summary = run_job(embedder, path, tmp_path / "out", shard_size=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - start < budget, f"peak {peak - start:,} B of Python allocations for a {corpus_bytes:,} B corpus"
    assert summary.embedded == len(texts) and summary.most_rows_held <= 10
    assert pa.total_allocated_bytes() - pool_before < budget  # nothing left in Arrow's pool
    assert read_output(tmp_path / "out")["id"] == list(range(len(texts)))
