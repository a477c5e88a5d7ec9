"""Start real server processes for HTTP tests, and stop them at the end of the session."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ONNX exports of this session's tiny models (folders in pytest's tmp) go here, not ~/.cache.
ONNX_CACHE = tempfile.mkdtemp(prefix="tei-bento-test-cache-")
atexit.register(shutil.rmtree, ONNX_CACHE, ignore_errors=True)  # after the servers stopped


def test_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        BENTOML_DO_NOT_TRACK="true",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"),
        TEI_BENTO_CACHE=ONNX_CACHE,
    )
    # never leak the caller's settings
    for key in ("MODEL_ID", "API_KEY", "POOLING", "DTYPE", "BACKEND", "QUANTIZE", "TORCHSCRIPT"):
        env.pop(key, None)
    env.update(extra or {})
    return env


@dataclass
class Server:
    command: list[str]
    env: dict[str, str]
    port: int
    process: subprocess.Popen | None = None
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))
    on_use: Callable[["Server"], None] | None = None
    """Set by a pool that may stop this server to bound memory: called on every use, it
    starts the server again (same port and arguments) where the pool had stopped it."""

    @property
    def url(self) -> str:
        if self.on_use is not None:
            self.on_use(self)
        return self.base_url

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180, ready_path: str = "/health") -> "Server":
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if requests.get(self.base_url + ready_path, timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"server did not become healthy in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class ServerPool:
    """Each distinct server started once and shared, at most `live` running at a time: using
    one more stops the least recently used, which starts again (same port and arguments)
    when a test next uses it. The suite starts dozens of servers; all at once they would
    not fit in a 24 GiB machine."""

    def __init__(self, live: int) -> None:
        self.live = live
        self.servers: dict[tuple, Server] = {}
        self.running: list[Server] = []  # least recently used first
        self.lock = threading.RLock()  # tests use servers from several threads

    def get(self, key: tuple, make: Callable[[], Server]) -> Server:
        if key not in self.servers:
            server = make()
            server.on_use = self.use
            self.servers[key] = server
            self.use(server)
        return self.servers[key]

    def use(self, server: Server) -> None:
        with self.lock:
            if server in self.running:
                if self.running[-1] is not server:
                    self.running.remove(server)
                    self.running.append(server)
                return
            while len(self.running) >= self.live:
                self.running.pop(0).stop()
            server.start()
            self.running.append(server)

    def stop(self) -> None:
        for server in self.running:
            server.stop()
        self.running.clear()


def tei_bento_server(*args: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "tei_bento.cli", "serve", "--port", str(port), *args]
    return Server(command, test_env(env), port)


def bentoml_server(*bento_args: str, env: dict[str, str] | None = None, target: str = "service:TEIBento") -> Server:
    port = free_port()
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    command = [bentoml, "serve", target, "--port", str(port), *bento_args]
    # `bentoml serve` wipes $BENTOML_HOME's task result store and Prometheus multiprocess
    # folder at start: each server needs its own home, or a second server erases the
    # first's tasks and metrics.
    home = {"BENTOML_HOME": tempfile.mkdtemp(prefix="bentoml-home-")}
    return Server(command, test_env({**home, **(env or {})}), port)
