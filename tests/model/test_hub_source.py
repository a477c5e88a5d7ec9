"""Hub ids resolve through real huggingface_hub code against a local Hub cache, offline."""

from __future__ import annotations

import pytest
import requests

from tests.model_factory import build_embedding_model, build_hub_cache
from tests.reference import assert_same_vectors

REPO_ID = "tei-bento-tests/tiny-bert"
TEXTS = ["resolved from the hub cache", "offline"]


@pytest.fixture(scope="module")
def hub_cache(models_dir):
    cache = models_dir / "hub-cache"
    main = build_embedding_model(models_dir / "hub-main", "bert", pooling="mean", seed=0)
    other = build_embedding_model(models_dir / "hub-v2", "bert", pooling="mean", seed=1)
    main_sha = build_hub_cache(cache, REPO_ID, main, revision="main")
    other_sha = build_hub_cache(cache, REPO_ID, other, revision="v2")
    return cache, {"main": (main, main_sha), "v2": (other, other_sha)}


def encode(folder, texts):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu").encode(texts, normalize_embeddings=True)


def test_revision_flag_picks_the_snapshot(hub_cache, server_pool):
    cache, revisions = hub_cache
    folder, sha = revisions["v2"]
    server = server_pool(
        "--model-id", REPO_ID, "--revision", "v2", "--huggingface-hub-cache", str(cache),
        "--hf-token", "hf_dummy_token_never_sent",
    )
    got = requests.post(server.url + "/embed", json={"inputs": TEXTS}).json()
    assert_same_vectors(got, encode(folder, TEXTS))
    info = requests.get(server.url + "/info").json()
    assert info["model_id"] == REPO_ID and info["model_sha"] == sha


def test_environment_variables_select_model_and_cache(hub_cache, server_pool):
    cache, revisions = hub_cache
    folder, _ = revisions["main"]
    server = server_pool(env={"MODEL_ID": REPO_ID, "HUGGINGFACE_HUB_CACHE": str(cache)})
    got = requests.post(server.url + "/embed", json={"inputs": TEXTS}).json()
    assert_same_vectors(got, encode(folder, TEXTS))
    other, _ = revisions["v2"]
    assert not (abs(encode(other, TEXTS) - encode(folder, TEXTS)) < 1e-3).all()


def test_unknown_model_stops_the_server_with_a_reason(tmp_path):
    from tests.server import tei_bento_server

    server = tei_bento_server(
        "--model-id", "nobody/nothing", "--huggingface-hub-cache", str(tmp_path)
    )
    with pytest.raises(RuntimeError) as caught:
        server.start(timeout=90)
    assert "could not load model `nobody/nothing`" in str(caught.value)
