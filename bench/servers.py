"""Start, watch and stop the servers under test (tei-bento configs and the naive server).

Why here and not in the load generator: the harness owns the server's whole life, so
every run is self-contained (free port, wait for /health, stop at the end, even on
Ctrl-C) and the server's memory and CPU are sampled from outside, from /proc via
psutil, over the process and all of its children.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.update(TOKENIZERS_PARALLELISM="false", BENTOML_DO_NOT_TRACK="true")
    return env


def tei_bento_command(port: int, model_id: str, flags: Sequence[str]) -> list[str]:
    """`tei-bento serve` on loopback; the config's flags come last so they win."""
    script = Path(sys.executable).with_name("tei-bento")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "tei_bento.cli"]
    return [
        *base,
        "serve",
        "--hostname",
        "127.0.0.1",
        "--port",
        str(port),
        "--prometheus-port",
        str(free_port()),
        "--model-id",
        model_id,
        "--log-level",
        "warning",
        *flags,
    ]


def naive_command(port: int, model_id: str) -> list[str]:
    return [sys.executable, "-m", "bench.naive_server", "--model-id", model_id, "--port", str(port)]


def display(command: Sequence[str]) -> str:
    return " ".join(shlex.quote(part) for part in command)


class Sampler(threading.Thread):
    """RSS (sum over the process tree) and CPU seconds, every `interval` seconds.

    RSS of parent and children is summed, which counts shared pages twice if the
    server forks workers; tei-bento and the naive server are single processes.
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def rss(self) -> int:
        total = 0
        for proc in self.tree():
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.tree():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.perf_counter(), self.rss()))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()

    def peak(self, start: float | None = None, end: float | None = None) -> int:
        """Highest RSS sampled in [start, end] (the whole life by default)."""
        lo, hi = start or float("-inf"), end or float("inf")
        return max((rss for t, rss in self.samples if lo <= t <= hi), default=0)


@dataclass
class Server:
    """A server process started by the harness; `stop()` always ends it."""

    label: str
    command: list[str]
    port: int
    env: dict[str, str] = field(default_factory=server_env)
    process: subprocess.Popen | None = None
    sampler: Sampler | None = None
    log_path: Path = field(
        default_factory=lambda: Path(tempfile.mkstemp(prefix="bench-", suffix=".log")[1])
    )
    startup_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> Server:
        """Start the process (its own session, so stop() reaches any child it spawns)."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._launched = time.perf_counter()
        self.sampler = Sampler(self.process.pid)
        self.sampler.start()
        return self

    def wait_healthy(self, timeout: float = 300.0) -> Server:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"exited with code {self.process.returncode}: {self.last_log_line()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        if not self.startup_s:  # first time seen healthy
                            self.startup_s = time.perf_counter() - self._launched
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"not healthy after {timeout:.0f} s: {self.last_log_line()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def last_log_line(self) -> str:
        """The end of the log, on one line: enough to tell why a server did not start."""
        lines = [line.strip() for line in self.log().splitlines() if line.strip()]
        return " | ".join(lines[-3:]) if lines else "(no output)"

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the group this harness created
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
