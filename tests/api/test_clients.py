"""Real clients against a real server: the `openai` package and huggingface_hub's InferenceClient."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reference import assert_same_vectors

TEXTS = ["What is Deep Learning?", "A sentence about the weather in Paris."]


@pytest.fixture(scope="module")
def openai_client(default_server):
    from openai import OpenAI

    return OpenAI(base_url=default_server.url + "/v1", api_key="unused", max_retries=0)


def test_openai_single_string(openai_client, minilm_reference):
    response = openai_client.embeddings.create(model="anything", input=TEXTS[0])
    assert response.object == "list" and len(response.data) == 1
    assert response.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert_same_vectors([response.data[0].embedding], minilm_reference.encode(TEXTS[:1]))
    assert response.usage.prompt_tokens == response.usage.total_tokens == 7


def test_openai_list_keeps_order_and_counts_tokens(openai_client, minilm_reference):
    response = openai_client.embeddings.create(model="m", input=TEXTS)
    assert [d.index for d in response.data] == [0, 1]
    assert_same_vectors([d.embedding for d in response.data], minilm_reference.encode(TEXTS))
    tokens = sum(len(minilm_reference.tokenizer(t)["input_ids"]) for t in TEXTS)
    assert response.usage.prompt_tokens == tokens


def test_openai_base64_decodes_to_the_same_floats(openai_client, minilm_reference):
    import base64

    raw = openai_client.embeddings.create(model="m", input=TEXTS, encoding_format="base64")
    decoded = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in raw.data]
    assert_same_vectors(decoded, minilm_reference.encode(TEXTS))


def test_openai_client_default_encoding_is_base64_and_decoded(openai_client, minilm_reference):
    # The openai client asks for base64 when no format is given and decodes it itself.
    response = openai_client.embeddings.create(model="m", input=TEXTS)
    assert isinstance(response.data[0].embedding, list)
    assert_same_vectors([d.embedding for d in response.data], minilm_reference.encode(TEXTS))


def test_openai_dimensions(openai_client, minilm_reference):
    response = openai_client.embeddings.create(model="m", input=TEXTS, dimensions=128)
    got = np.array([d.embedding for d in response.data])
    assert got.shape == (2, 128)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_openai_token_id_input(openai_client, minilm_reference):
    ids = minilm_reference.tokenizer(TEXTS[0])["input_ids"]
    response = openai_client.embeddings.create(model="m", input=[ids])
    assert_same_vectors([response.data[0].embedding], minilm_reference.encode(TEXTS[:1]))


def test_openai_error_surfaces_as_api_error(openai_client):
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.embeddings.create(model="m", input="")
    assert "cannot be empty" in str(caught.value)


@pytest.fixture
def hub_client_online(monkeypatch):
    """huggingface_hub blocks every URL, localhost included, in offline mode (which the test
    command sets so nothing reaches the Hub); the InferenceClient only talks to our server."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)


def test_inference_client_feature_extraction(default_server, minilm_reference, hub_client_online):
    from huggingface_hub import InferenceClient

    client = InferenceClient(model=default_server.url)
    got = client.feature_extraction(TEXTS[0])
    assert_same_vectors(np.asarray(got).reshape(1, -1), minilm_reference.encode(TEXTS[:1]))
    got = client.feature_extraction(TEXTS[1], normalize=False)
    assert np.asarray(got).size == minilm_reference.get_embedding_dimension()


def test_inference_client_sentence_similarity(default_server, minilm_reference, hub_client_online):
    from huggingface_hub import InferenceClient

    client = InferenceClient(model=default_server.url)
    scores = client.sentence_similarity(TEXTS[0], other_sentences=[TEXTS[1], TEXTS[0]])
    vectors = minilm_reference.encode(TEXTS)
    np.testing.assert_allclose(scores, [vectors[0] @ vectors[1], 1.0], atol=1e-4)
