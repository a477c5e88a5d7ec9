"""Start `tei-bento serve` from a notebook and wait for it: the same command a user runs in a
terminal, as a child process the notebook stops at its end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings

import requests

# Quiet notebooks: no weight-loading bars or load reports between the answers.
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore", message="IProgress not found")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(*args: str, timeout: float = 300) -> tuple[subprocess.Popen, str]:
    """`tei-bento serve ARGS --port <free>`; returns the process and its base URL once
    `/health` answers 200 (a model loads in seconds on CPU)."""
    port = free_port()
    command = [sys.executable, "-m", "tei_bento.cli", "serve", *args, "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tei-bento serve exited: {process.stderr.read()[-2000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    process.kill()
    raise TimeoutError(f"tei-bento serve did not answer /health in {timeout} s")


def stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=60)
