"""`--long-inputs chunk` and `error` through real servers. The reference builds the same
windows with the model's tokenizer (content tokens, 25% overlap, the special tokens around
each) and runs them through sentence-transformers, then averages them weighted by their
token counts and normalizes."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from tests.reference import assert_same_vectors, without_normalize

LONG = " ".join(f"sentence {i} talks about the weather, the sea and the mountains far away." for i in range(60))
SHORT = "a short text stays one window"


def reference_windows(text: str, model) -> np.ndarray:
    """The pooled, unnormalized vector of `text` as tei-bento's chunking defines it."""
    import torch

    raw = without_normalize(model)
    tokenizer = raw.tokenizer
    window = raw.max_seq_length  # 256 for all-MiniLM-L6-v2
    content = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(content) + 2 <= window:
        return raw.encode([text])[0]
    size = window - 2  # [CLS] ... [SEP]
    stride = size - size // 4
    starts = range(0, len(content) - size + stride, stride)
    vectors, weights = [], []
    for start in starts:
        ids = [tokenizer.cls_token_id, *content[start : start + size], tokenizer.sep_token_id]
        features = {
            "input_ids": torch.tensor([ids]),
            "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
            "token_type_ids": torch.zeros(1, len(ids), dtype=torch.long),
        }
        with torch.no_grad():
            vectors.append(raw(features)["sentence_embedding"][0].numpy())
        weights.append(len(ids))
    return np.average(np.stack(vectors), axis=0, weights=weights)


def normalized(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


@pytest.fixture(scope="module")
def chunking(server_pool):
    return server_pool("--long-inputs", "chunk")


def embed(server, **body) -> requests.Response:
    return requests.post(server.url + "/embed", json=body, timeout=60)


def test_a_long_input_is_the_weighted_mean_of_its_windows(chunking, minilm_reference):
    assert len(minilm_reference.tokenizer(LONG)["input_ids"]) > 3 * 256  # four windows
    answer = embed(chunking, inputs=[LONG, SHORT])
    assert answer.status_code == 200, answer.text
    long_vector = reference_windows(LONG, minilm_reference)
    assert_same_vectors(answer.json(), np.stack([normalized(long_vector), minilm_reference.encode([SHORT])[0]]))
    raw = embed(chunking, inputs=LONG, normalize=False).json()
    assert_same_vectors(raw, long_vector[None, :])
    tokens = int(embed(chunking, inputs=LONG).headers["x-compute-tokens"])
    assert tokens > len(minilm_reference.tokenizer(LONG)["input_ids"])  # the overlaps computed twice


def test_every_embed_door_chunks(chunking, minilm_reference):
    want = normalized(reference_windows(LONG, minilm_reference))[None, :]
    openai = requests.post(chunking.url + "/v1/embeddings", json={"input": [LONG]}, timeout=60).json()
    assert_same_vectors([openai["data"][0]["embedding"]], want)
    cohere = requests.post(chunking.url + "/v2/embed", json={"texts": [LONG], "truncate": "NONE"}, timeout=60).json()
    assert_same_vectors(cohere["embeddings"]["float"], want)


def test_an_explicit_truncate_still_truncates(chunking, minilm_reference):
    answer = embed(chunking, inputs=LONG, truncate=True)
    assert_same_vectors(answer.json(), minilm_reference.encode([LONG]))  # ST truncates to 256


def test_info_and_error_mode(chunking, server_pool):
    assert requests.get(chunking.url + "/info", timeout=10).json()["long_inputs"] == "chunk"
    refusing = server_pool("--long-inputs", "error")
    answer = embed(refusing, inputs=LONG)
    assert answer.status_code == 413 or answer.status_code == 422
    assert answer.json()["error_type"] == "Validation" and "must have less than 256 tokens" in answer.json()["error"]
    assert embed(refusing, inputs=LONG, truncate=True).status_code == 200
    assert embed(refusing, inputs=SHORT).status_code == 200


def test_a_wrong_long_inputs_value_stops_the_cli():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "tei_bento.cli", "serve", "--long-inputs", "split"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "long_inputs" in (result.stderr + result.stdout).replace("-", "_")
