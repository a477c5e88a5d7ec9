"""Benchmark harness for tei-bento (issue 4): load generator, baselines, reports.

Run it with `python -m bench.run` (see bench/README.md). Nothing here is imported by the
server; the package lives outside `tei_bento` so the wheel never ships it.
"""
