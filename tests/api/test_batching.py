"""`--preferred-batch-tokens` through a real server: smaller batches, the same vectors."""

from __future__ import annotations

import numpy as np
import requests

from tests.metrics import scrape, total
from tests.reference import assert_same_vectors

TEXTS = [f"sentence number {i} about the weather" for i in range(8)]


def batches_formed(server) -> float:
    return total(scrape(server), "te_batch_next_size_count")


def embed_counting_batches(server) -> tuple[np.ndarray, float]:
    before = batches_formed(server)
    response = requests.post(server.url + "/embed", json={"inputs": TEXTS}, timeout=60)
    assert response.status_code == 200, response.text
    return np.asarray(response.json()), batches_formed(server) - before


def test_preferred_batch_tokens_splits_batches_without_changing_vectors(
    default_server, server_pool, minilm_reference
):
    (length,) = {len(ids) for ids in minilm_reference.tokenizer(TEXTS)["input_ids"]}
    capped = server_pool("--preferred-batch-tokens", str(2 * length - 1))  # no room for two
    expected = minilm_reference.encode(TEXTS, normalize_embeddings=True)

    vectors, batches = embed_counting_batches(capped)
    assert batches == len(TEXTS)
    assert_same_vectors(vectors, expected)

    vectors, batches = embed_counting_batches(default_server)  # 2048 on CPU: one batch
    assert batches == 1
    assert_same_vectors(vectors, expected)
