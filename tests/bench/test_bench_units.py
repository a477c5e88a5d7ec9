"""The benchmark's pure logic: corpus, percentiles, /metrics deltas, windows, tables.

No server, no model, no timing assertions: speed is measured by `make bench`, never
asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys

import pytest

from bench import corpus, loadgen, report
from bench.baselines import st_padding_efficiency
from bench.plans import PLANS, parse_config, plan_from
from bench.run import build_parser

# -- corpus --------------------------------------------------------------------------------


def test_corpus_build_is_deterministic_and_seeded():
    first = corpus.build()
    assert corpus.dumps(first) == corpus.dumps(corpus.build())
    assert corpus.dumps(first) != corpus.dumps(corpus.build(seed=corpus.SEED + 1))


@pytest.mark.skipif(
    platform.python_version() != corpus.GENERATED_WITH,
    reason="docstrings differ between Python versions; the committed file is the reference",
)
def test_committed_corpus_is_what_the_generator_writes():
    # A fresh interpreter: libraries imported by other tests patch some stdlib functions.
    check = subprocess.run(
        [sys.executable, "-m", "bench.corpus", "--check"],
        cwd=corpus.CORPUS_PATH.parents[1],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_committed_corpus_is_small_and_has_the_length_mix():
    assert corpus.CORPUS_PATH.stat().st_size < 1_000_000
    items = corpus.load()
    assert [item.id for item in items] == list(range(len(items)))
    assert len({item.text for item in items}) == len(items)
    mix = corpus.summary(items)
    for kind, (low, high) in corpus.WORDS.items():
        assert low <= mix[kind]["min_words"] <= mix[kind]["max_words"] <= high
    assert mix["query"]["count"] > mix["passage"]["count"] > mix["document"]["count"] > 0
    assert mix["query"]["count"] / len(items) > 0.6


def test_prose_filter_drops_code():
    assert corpus.is_prose_sentence("Return the number of items in the queue.")
    assert not corpus.is_prose_sentence("x = foo(bar) == baz.")
    assert not corpus.is_prose_sentence(">>> print(1)")
    assert not corpus.is_prose_sentence("lowercase start is not a sentence.")
    paragraphs = list(
        corpus.prose_paragraphs("Summary line.\n\n    code_block()\n\n>>> 1 + 1\n2\n\nMore text.")
    )
    assert paragraphs == ["Summary line.", "More text."]


# -- maths ---------------------------------------------------------------------------------


def test_percentile_interpolates_like_numpy():
    assert report.percentile([], 50) is None
    assert report.percentile([7.0], 99) == 7.0
    assert report.percentile([4, 1, 3, 2], 50) == 2.5
    assert report.percentile([1, 2, 3, 4], 0) == 1
    assert report.percentile([1, 2, 3, 4], 100) == 4
    assert report.percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)
    numpy = pytest.importorskip("numpy")
    rng = random.Random(0)
    values = [rng.expovariate(0.1) for _ in range(501)]
    for q in (50, 90, 99):
        assert report.percentile(values, q) == pytest.approx(
            float(numpy.percentile(values, q)), abs=1e-3
        )


def test_st_padding_efficiency_sorts_by_length_then_batches():
    texts = ["a", "bbbb", "cc", "ddd"]
    tokens = [3, 6, 4, 5]
    # sorted by characters: bbbb(6) ddd(5) | cc(4) a(3) -> padded 6*2 + 4*2 = 20
    assert st_padding_efficiency(texts, tokens, 2) == pytest.approx(18 / 20)
    assert st_padding_efficiency(texts, tokens, 1) == 1.0


# -- /metrics ------------------------------------------------------------------------------

METRICS_BEFORE = """\
# HELP te_batch_next_tokens Tokens per batch
# TYPE te_batch_next_tokens histogram
te_batch_next_tokens_bucket{le="1.0"} 0.0
te_batch_next_tokens_bucket{le="+Inf"} 3.0
te_batch_next_tokens_count 3.0
te_batch_next_tokens_sum 120.0
te_batch_padded_tokens_count 3.0
te_batch_padded_tokens_sum 150.0
te_request_count_total{method="embed"} 3.0
te_queue_size 0.0
"""

METRICS_AFTER = """\
te_batch_next_tokens_bucket{le="+Inf"} 10.0
te_batch_next_tokens_count 10.0
te_batch_next_tokens_sum 920.0
te_batch_padded_tokens_count 10.0
te_batch_padded_tokens_sum 1150.0
te_request_count_total{method="embed"} 10.0
te_odd NaN
"""


def test_metrics_parsing_and_padding_efficiency_over_a_window():
    before = report.parse_metrics(METRICS_BEFORE)
    after = report.parse_metrics(METRICS_AFTER)
    assert before['te_batch_next_tokens_bucket{le="+Inf"}'] == 3.0
    assert before['te_request_count_total{method="embed"}'] == 3.0
    assert "te_odd" in after
    delta = report.metrics_delta(before, after)
    assert delta[report.NEXT_TOKENS] == 800.0
    assert delta[report.PADDED_TOKENS] == 1000.0
    assert report.padding_efficiency(delta) == 0.8


def test_padding_efficiency_sums_over_the_model_label():
    before = report.parse_metrics(
        'te_batch_next_tokens_sum{model="a"} 10.0\nte_batch_padded_tokens_sum{model="a"} 20.0\n'
    )
    after = report.parse_metrics(
        'te_batch_next_tokens_sum{model="a"} 70.0\nte_batch_padded_tokens_sum{model="a"} 100.0\n'
        'te_batch_next_tokens_sum{model="b"} 30.0\nte_batch_padded_tokens_sum{model="b"} 40.0\n'
    )
    assert report.padding_efficiency(report.metrics_delta(before, after)) == round(90 / 120, 4)


def test_a_checkout_config_runs_another_tree_first_on_the_path(tmp_path):
    from bench.run import checkout_env, parse_checkout

    (tmp_path / "tei_bento").mkdir()
    assert parse_checkout(f"before={tmp_path}") == ("before", tmp_path.resolve())
    assert checkout_env(tmp_path)["PYTHONPATH"] == str(tmp_path)
    with pytest.raises(Exception, match="NAME=DIR"):
        parse_checkout(f"before={tmp_path / 'missing'}")


def test_padding_efficiency_is_none_without_the_metric_or_batches():
    assert report.padding_efficiency({}) is None
    same = report.parse_metrics(METRICS_BEFORE)
    assert report.padding_efficiency(report.metrics_delta(same, same)) is None


# -- load generator bookkeeping ------------------------------------------------------------


def test_requests_cycle_over_the_corpus_in_the_route_schema():
    texts, tokens = ["a", "b", "c"], [3, 4, 5]
    reqs = loadgen.make_requests("/embed", texts, tokens, 2, 3)
    assert [json.loads(r.body) for r in reqs] == [
        {"inputs": ["a", "b"]},
        {"inputs": ["c", "a"]},
        {"inputs": ["b", "c"]},
    ]
    assert [r.tokens for r in reqs] == [7, 8, 9]
    assert len(loadgen.make_requests("/embed", ["t"] * 10, [1] * 10, 4)) == 5  # one cycle
    openai = loadgen.make_requests("/v1/embeddings", texts, tokens, 1, 1)[0]
    assert json.loads(openai.body)["input"] == ["a"]


def test_window_stats_count_only_the_window():
    S = loadgen.Sample
    samples = [
        S(0.0, 0.5, 200, 1, 10),  # finished before the window: ignored
        S(0.8, 1.2, 200, 1, 10),  # started before, finished inside: throughput only
        S(1.1, 1.3, 200, 2, 20),
        S(1.4, 1.6, 429, 1, 10),
        S(1.5, 1.9, 500, 1, 10),
        S(1.7, 2.5, 200, 1, 10),  # started inside, finished after: latency only
    ]
    run = loadgen.StageRun(samples, (1.0, 2.0), issued=6)
    stats = loadgen.window_stats(run)
    assert stats["requests_ok"] == 2
    assert stats["tokens_per_s"] == 30.0
    assert stats["texts_per_s"] == 3.0
    assert stats["status_429"] == 1
    assert stats["errors"] == 1
    assert stats["latency_samples"] == 2  # 200 ms and 800 ms
    assert stats["p50_ms"] == pytest.approx(500.0)
    assert stats["statuses"] == {"200": 2, "429": 1, "500": 1}


# -- command line --------------------------------------------------------------------------


def test_config_syntax():
    assert parse_config("default=") == ("default", [])
    assert parse_config('onnx=--backend onnx --max-batch-tokens "8192"') == (
        "onnx",
        ["--backend", "onnx", "--max-batch-tokens", "8192"],
    )
    with pytest.raises(argparse.ArgumentTypeError):
        parse_config("no-equals-sign")


def test_quick_mode_stays_small_and_overrides_apply():
    args = build_parser().parse_args(["--quick", "--concurrency", "1,4", "--duration", "2"])
    plan = plan_from(args)
    assert plan.concurrencies == (1, 4) and plan.duration_s == 2.0
    assert max(PLANS["quick"].concurrencies) <= 8
    assert PLANS["full"].concurrencies == (1, 8, 32, 128)
    assert PLANS["full"].batch_sizes == (1, 8)
    assert PLANS["full"].st_batch_sizes == (8, 16, 32, 64, 128)


# -- report --------------------------------------------------------------------------------


def _stage(route: str, clients: int, batch: int, tps: float) -> dict:
    return {
        "route": route,
        "concurrency": clients,
        "batch_size": batch,
        "tokens_per_s": tps,
        "ratio_to_st": tps / 1000,
        "requests_per_s": 10.0,
        "requests_ok": 100,
        "p50_ms": 12.0,
        "p90_ms": 20.0,
        "p99_ms": 31.5,
        "status_429": 0,
        "errors": 0,
        "padding_efficiency": 0.9,
        "peak_rss_mib": 500.0,
    }


def _results() -> dict:
    return {
        "name": "unit",
        "mode": "quick",
        "command": "python -m bench.run --quick",
        "created": "2026-01-01T00:00:00+00:00",
        "machine": {"cpu": "Test CPU", "cores": 2, "usable_cores": 2, "versions": {}},
        "model": {"id": "m", "name": "org/m", "max_length": 256},
        "corpus": {
            "items": 3,
            "sha256": "ab" * 32,
            "mix": {"query": {"count": 2}, "passage": {"count": 1}, "document": {"count": 0}},
        },
        "baseline": {
            "st": [
                {
                    "batch_size": 8,
                    "texts_per_s": 10.0,
                    "tokens_per_s": 1000.0,
                    "padding_efficiency": 0.8,
                    "texts": 48,
                }
            ],
            "st_best": {"batch_size": 8, "tokens_per_s": 1000.0, "texts": 48},
            "bare_forward": {
                "text": "Short text.",
                "tokens": 5,
                "forward": {"median_ms": 4.0},
                "encode_one": {"median_ms": 6.0},
            },
        },
        "servers": [
            {
                "label": "default",
                "kind": "tei-bento",
                "idle": {"/embed": {"n": 10, "median_ms": 6.5, "p90_ms": 7.0, "overhead_ms": 2.5}},
                "stages": [_stage("/embed", 8, 1, 2000.0), _stage("/embed", 8, 8, 3000.0)],
            },
            {
                "label": "naive",
                "kind": "naive",
                "idle": {"/embed": {"n": 10, "median_ms": 9.0, "p90_ms": 9.5, "overhead_ms": 5.0}},
                "stages": [_stage("/embed", 8, 1, 500.0)],
            },
        ],
    }


def test_naive_comparison_matches_route_clients_and_batch():
    results = _results()
    [row] = report.naive_comparisons(results)
    assert (row["config"], row["concurrency"], row["batch_size"]) == ("default", 8, 1)
    assert row["speedup"] == 4.0


def test_markdown_table_renders():
    results = _results()
    results["comparisons"] = report.naive_comparisons(results)
    md = report.render_markdown(results)
    assert "Test CPU" in md and "`python -m bench.run --quick`" in md
    assert "2 queries, 1 passages, 0 documents" in md
    assert "| default | `/embed` | 8 | 1 | 2,000 | 2.00 | 10.0 | 12.0 | 20.0 | 31.5 |" in md
    assert "| default | `/embed` | 10 | 6.50 | 7.00 | 2.50 | yes |" in md
    assert "| naive | `/embed` | 10 | 9.00 | 9.50 | 5.00 | **no** |" in md
    assert "| default | 1 | 2,000 | 500 | 4.00× |" in md
    header = next(line for line in md.splitlines() if line.startswith("| server | route | clients"))
    rows = [line for line in md.splitlines() if line.startswith("| default | `/embed` | 8 |")]
    assert all(row.count("|") == header.count("|") for row in rows)
