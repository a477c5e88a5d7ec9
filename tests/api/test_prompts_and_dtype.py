"""Prompts (per request, server defaults, the folder's default) and --dtype, over HTTP."""

from __future__ import annotations

import numpy as np
import pytest
import requests
from sentence_transformers import SentenceTransformer

from tests.model_factory import build_embedding_model
from tests.reference import assert_same_vectors, cosine_rows

PROMPTS = {"query": "query: ", "passage": "passage: "}
TEXTS = ["how do tides work", "the moon pulls the sea"]


@pytest.fixture(scope="module")
def prompted_folder(models_dir):
    return build_embedding_model(models_dir / "prompted", "roberta", pooling="mean", prompts=PROMPTS)


@pytest.fixture(scope="module")
def folder_with_default_prompt(models_dir):
    return build_embedding_model(
        models_dir / "default-prompt", "bert", prompts=PROMPTS, default_prompt_name="passage"
    )


def embed(server, **body):
    response = requests.post(server.url + "/embed", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_default_prompt_name_flag(prompted_folder, server_pool):
    server = server_pool("--model-id", str(prompted_folder), "--default-prompt-name", "query")
    reference = SentenceTransformer(str(prompted_folder), device="cpu")
    expected = reference.encode(TEXTS, prompt_name="query", normalize_embeddings=True)
    assert_same_vectors(embed(server, inputs=TEXTS), expected)
    # a request's own prompt_name wins over the server default
    expected = reference.encode(TEXTS, prompt_name="passage", normalize_embeddings=True)
    assert_same_vectors(embed(server, inputs=TEXTS, prompt_name="passage"), expected)


def test_default_prompt_text_flag(prompted_folder, server_pool):
    server = server_pool("--model-id", str(prompted_folder), "--default-prompt", "Represent: ")
    reference = SentenceTransformer(str(prompted_folder), device="cpu")
    expected = reference.encode(TEXTS, prompt="Represent: ", normalize_embeddings=True)
    assert_same_vectors(embed(server, inputs=TEXTS), expected)


def test_folder_default_prompt_name_applies(folder_with_default_prompt, server_pool):
    server = server_pool("--model-id", str(folder_with_default_prompt))
    reference = SentenceTransformer(str(folder_with_default_prompt), device="cpu")
    assert reference.default_prompt_name == "passage"
    assert_same_vectors(embed(server, inputs=TEXTS), reference.encode(TEXTS, normalize_embeddings=True))
    info = requests.get(server.url + "/info").json()
    assert info["prompts"]["query"] == "query: "


def test_unknown_prompt_name_lists_the_available_ones(prompted_folder, server_pool):
    server = server_pool("--model-id", str(prompted_folder))
    response = requests.post(server.url + "/embed", json={"inputs": "x", "prompt_name": "nope"})
    assert response.status_code == 422
    assert "Available prompts" in response.json()["error"] and "query" in response.json()["error"]


def test_tokenize_shows_the_prompt_tokens(prompted_folder, server_pool):
    server = server_pool("--model-id", str(prompted_folder))
    tokens = requests.post(
        server.url + "/tokenize", json={"inputs": "tides", "prompt_name": "query"}
    ).json()[0]
    text = "".join(t["text"] for t in tokens if not t["special"])
    assert text.replace(" ", "").startswith("query:")


def test_conflicting_default_prompts_refuse_to_start(prompted_folder):
    from tests.server import tei_bento_server

    server = tei_bento_server(
        "--model-id", str(prompted_folder), "--default-prompt", "a", "--default-prompt-name", "query"
    )
    with pytest.raises(RuntimeError, match="mutually exclusive"):
        server.start(timeout=90)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_on_cpu_stays_close_to_float32(dtype, server_pool, minilm_reference):
    server = server_pool("--dtype", dtype)
    texts = ["half precision check", "another sentence to embed in reduced precision"]
    got = np.asarray(embed(server, inputs=texts))
    cos = cosine_rows(got, minilm_reference.encode(texts))
    assert cos.min() > 0.99, cos
    assert requests.get(server.url + "/info").json()["model_dtype"] == dtype


@pytest.mark.parametrize(("arch", "pooling"), [("bert", "mean"), ("roberta", "cls"), ("bert", "weightedmean")])
def test_prompt_tokens_are_left_out_of_pooling_where_the_folder_says_so(
    arch, pooling, models_dir, server_pool
):
    """`include_prompt: false` (INSTRUCTOR-style folders): the prompt is tokenized with the
    text but pooling skips its tokens, exactly as SentenceTransformer.encode does."""
    import threading

    folder = build_embedding_model(
        models_dir / f"no-prompt-pooling-{arch}-{pooling}", arch, pooling=pooling,
        prompts=PROMPTS, include_prompt=False,
    )  # fmt: skip
    server = server_pool("--model-id", str(folder))
    reference = SentenceTransformer(str(folder), device="cpu")
    answers: dict[str, list] = {}

    def call(name):  # concurrent requests with different prompts may share a batch
        answers[name] = embed(server, inputs=TEXTS, prompt_name=name)

    threads = [threading.Thread(target=call, args=(name,)) for name in PROMPTS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in PROMPTS:
        expected = reference.encode(TEXTS, prompt_name=name, normalize_embeddings=True)
        assert_same_vectors(answers[name], expected)
    with_prompt_pooled = SentenceTransformer(str(folder), device="cpu")
    with_prompt_pooled[1].include_prompt = True
    pooled_anyway = with_prompt_pooled.encode(TEXTS, prompt_name="query", normalize_embeddings=True)
    assert cosine_rows(answers["query"], pooled_anyway).min() < 0.99999  # the test can fail
    assert_same_vectors(embed(server, inputs=TEXTS), reference.encode(TEXTS, normalize_embeddings=True))
