"""--backend onnx and --quantize int8 through a real server, against float32 references."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.broken_onnx_server import shifted_build
from tests.reference import assert_same_vectors, cosine_rows
from tests.server import Server, free_port, test_env

TEXTS = [
    "What is Deep Learning?",
    "ONNX Runtime fuses attention, GELU and layer norms into single kernels.",
    "A very different sentence about cooking pasta with tomatoes and basil.",
    "short",
]


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    return {"TEI_BENTO_CACHE": str(tmp_path_factory.mktemp("onnx-cache"))}


def embed(server, texts):
    response = requests.post(server.url + "/embed", json={"inputs": texts}, timeout=60)
    assert response.status_code == 200, response.text
    return np.asarray(response.json())


def test_onnx_float32_equals_sentence_transformers(server_pool, cache_env, minilm_reference):
    server = server_pool("--backend", "onnx", env=cache_env)
    assert_same_vectors(embed(server, TEXTS), minilm_reference.encode(TEXTS))
    info = requests.get(server.url + "/info").json()
    assert info["backend"] == "onnx" and info["model_dtype"] == "float32"


def corpus_texts(count: int) -> list[str]:
    """The benchmark's texts: short queries (the hardest for int8), passages, documents."""
    lines = (Path(__file__).parents[2] / "bench" / "corpus.jsonl").read_text().splitlines()
    return [json.loads(line)["text"] for line in lines[:: len(lines) // count]][:count]


def test_int8_is_close_and_reports_its_accuracy(server_pool, cache_env, minilm_reference):
    server = server_pool("--quantize", "int8", env=cache_env)
    texts = TEXTS + corpus_texts(124)
    got = np.concatenate([embed(server, texts[i : i + 32]) for i in range(0, len(texts), 32)])
    cos = cosine_rows(got, minilm_reference.encode(texts))
    assert cos.min() >= 0.99, (cos.min(), texts[int(cos.argmin())])
    info = requests.get(server.url + "/info").json()
    assert info["backend"] == "onnx-int8"
    accuracy = info["accuracy"]
    assert 0.98 < accuracy["min_cosine_to_float32"] <= accuracy["mean_cosine_to_float32"] <= 1.0


def test_onnx_reranker_equals_cross_encoder(server_pool, cache_env, reranker_folder):
    from sentence_transformers import CrossEncoder

    folder = reranker_folder("bert")
    server = server_pool("--model-id", str(folder), "--backend", "onnx", env=cache_env)
    texts = ["the cat sat", "a dog ran in the park", "weather report"]
    got = requests.post(
        server.url + "/rerank", json={"query": "where is the cat", "texts": texts, "raw_scores": True}
    ).json()
    scores = {r["index"]: r["score"] for r in got}
    expected = CrossEncoder(str(folder), device="cpu").predict(
        [("where is the cat", t) for t in texts], activation_fn=lambda x: x
    )
    np.testing.assert_allclose([scores[i] for i in range(3)], expected, atol=1e-4)


def test_onnx_batch_matches_single(server_pool, cache_env):
    server = server_pool("--backend", "onnx", env=cache_env)
    alone = embed(server, ["short"])
    batch = embed(server, [TEXTS[1] * 5, "short"])
    assert_same_vectors(batch[1:], alone, min_cosine=0.999999, atol=1e-5)


@pytest.mark.parametrize(
    ("flags", "weights"),
    [("fpu avx2 fma", "QUInt8"), ("avx2 avx512f avx512_vnni", "QInt8"), ("avx2 avx_vnni", "QInt8")],
)
def test_int8_weights_are_unsigned_without_vnni(tmp_path, flags, weights):
    """uint8 x int8 products saturate in int16 without VNNI (vpmaddubsw)."""
    from tei_bento.backends.onnx import int8_weight_type

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor : 0\nflags : {flags}\n")
    assert int8_weight_type(cpuinfo) == weights
    assert int8_weight_type(tmp_path / "absent") == "QUInt8"


@pytest.mark.parametrize("broken", [False, True])
def test_auto_backend_serves_onnx_only_when_it_reproduces_torch(
    broken, models_dir, monkeypatch, cache_env
):
    """`--backend auto` (the default): ONNX Runtime when the exported graph gives the torch
    network's numbers on unseen batch shapes, else torch, and the engine still starts."""
    from tei_bento.backends import onnx
    from tei_bento.engine.engine import Engine
    from tei_bento.settings import ModelSettings
    from tests.model_factory import build_embedding_model

    monkeypatch.setenv("TEI_BENTO_CACHE", cache_env["TEI_BENTO_CACHE"])
    if broken:
        monkeypatch.setattr(onnx, "build_onnx_backend", shifted_build(onnx.build_onnx_backend))
    folder = build_embedding_model(models_dir / "auto-backend-bert", "bert", pooling="mean")
    engines = [
        Engine.from_settings(ModelSettings(model_id=str(folder), **extra))
        for extra in ({}, {"backend": "torch", "torchscript": False})
    ]
    try:
        assert engines[0].backend.name == ("torchscript" if broken else "onnx")
        assert engines[1].backend.name == "torch"
    finally:
        for engine in engines:
            engine.close()


def test_cache_is_published_whole_and_a_crashed_build_is_replaced(tmp_path, monkeypatch, minilm_reference):
    """A build lands in the cache with one rename; a folder left by a crashed start (files
    but no report) is rebuilt rather than read half-written."""
    from tei_bento.engine.engine import Engine
    from tei_bento.settings import ModelSettings

    monkeypatch.setenv("TEI_BENTO_CACHE", str(tmp_path))
    settings = ModelSettings(backend="onnx")
    first = Engine.from_settings(settings)
    (published,) = [d for d in (tmp_path / "onnx").iterdir()]
    assert sorted(p.name for p in published.iterdir()) == ["final.onnx", "model.onnx", "report.json"]
    (published / "report.json").unlink()
    (published / "final.onnx").write_bytes(b"half written")
    second = Engine.from_settings(settings)
    assert json.loads((published / "report.json").read_text())["path"] == str(published / "final.onnx")
    assert [d.name for d in (tmp_path / "onnx").iterdir()] == [published.name]  # no leftovers
    for engine in (first, second):
        encoding = engine.tokenizers.tokenizer.encode(TEXTS[1])
        got = engine.runner.forward([encoding.ids], [encoding.type_ids]).vectors
        assert_same_vectors(got / np.linalg.norm(got), minilm_reference.encode(TEXTS[1:2]))
        engine.close()


def test_a_server_whose_onnx_graph_differs_serves_torch(minilm_reference):
    """The same refusal through a real server process: `/info` says torch, the vectors are
    sentence-transformers' (a served shifted graph would be off by 1e-2 per dimension)."""
    port = free_port()
    command = [sys.executable, "-m", "tests.broken_onnx_server", "serve", "--port", str(port)]
    server = Server(command, test_env(), port).start()
    try:
        assert requests.get(server.url + "/info", timeout=10).json()["backend"] == "torchscript"
        assert "ONNX Runtime not used" in server.log()
        assert_same_vectors(embed(server, TEXTS), minilm_reference.encode(TEXTS))
    finally:
        server.stop()
