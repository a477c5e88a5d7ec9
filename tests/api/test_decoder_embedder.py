"""A decoder embedder of the Qwen3-Embedding kind (last-token pooling, left padding in its
tokenizer, an instruction prompt for queries) through a real server, equal to
sentence-transformers on the same folder, batched and alone."""

from __future__ import annotations

import pytest
import requests

from tests.model_factory import build_embedding_model
from tests.reference import assert_same_vectors

INSTRUCTION = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
QUERIES = ["where did the cat sit", "what is the weather like in the mountains far away today"]
DOCUMENTS = ["the cat sat on the mat", "sunny", "a much longer passage about the sea and the sky and the hills"]


@pytest.fixture(scope="module")
def qwen3_embedding(models_dir, server_pool):
    from sentence_transformers import SentenceTransformer

    folder = build_embedding_model(
        models_dir / "tiny-Qwen3-Embedding", "qwen3", pooling="lasttoken", prompts={"query": INSTRUCTION, "document": ""},
        normalize_module=True, padding_side="left",
    )  # fmt: skip
    reference = SentenceTransformer(str(folder), device="cpu")
    assert reference.tokenizer.padding_side == "left"
    return server_pool("--model-id", str(folder)), reference


def embed(server, **body):
    answer = requests.post(server.url + "/embed", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_queries_with_the_instruction_and_documents_without(qwen3_embedding):
    server, reference = qwen3_embedding
    assert_same_vectors(embed(server, inputs=QUERIES, prompt_name="query"), reference.encode(QUERIES, prompt_name="query"))
    assert_same_vectors(embed(server, inputs=DOCUMENTS), reference.encode(DOCUMENTS))
    assert_same_vectors(embed(server, inputs=DOCUMENTS[1:2]), reference.encode(DOCUMENTS)[1:2])  # alone = in a batch


def test_openai_route_and_info(qwen3_embedding):
    server, reference = qwen3_embedding
    answer = requests.post(server.url + "/v1/embeddings", json={"input": DOCUMENTS, "model": "x"}, timeout=60)
    assert_same_vectors([d["embedding"] for d in answer.json()["data"]], reference.encode(DOCUMENTS))
    info = requests.get(server.url + "/info", timeout=10).json()
    assert info["model_type"] == {"embedding": {"pooling": "last_token"}}
