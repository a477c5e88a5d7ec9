"""bench/gpu.py cannot be run here for real (no GPU), so its whole path runs in smoke mode on
the CPU: MiniLM built, encoded in-process, served over HTTP, measured and reported, so the
prepared script does not rot between the sessions that are lent a GPU."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.server import REPO
from tests.server import test_env as server_env


def test_the_gpu_benchmark_runs_end_to_end_in_smoke_mode(tmp_path, server_pool):
    server_pool.stop_all()  # it starts a server of its own
    run = subprocess.run(
        [sys.executable, "-m", "bench.gpu", "--smoke", "--models", "all-MiniLM-L6-v2", "--out", str(tmp_path)],
        cwd=REPO, env=server_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "gpu-smoke.json").read_text())
    (row,) = results["models"]
    assert row["context"] == 256 and row["tokens_per_text"] == 256
    assert row["saturated_errors"] == row["mixed_errors"] == 0
    assert row["saturated_tokens_per_s"] > 0 and row["mixed_tokens_per_s"] > 0 and row["encode_mixed_tokens_per_s"] > 0
    assert row["bare_forward_ms"] > 0 and row["idle_batch1_ms"] > 0 and row["encode_batch1_ms"] > 0
    assert (tmp_path / "gpu-smoke.png").stat().st_size > 0 and "| all-MiniLM-L6-v2 |" in (tmp_path / "gpu-smoke.md").read_text()
