"""/predict through a real server, compared with transformers' AutoModelForSequenceClassification.

A tiny random three-label BERT classifier (labels named in id2label) is built once per
session; every answer must equal the model's softmax (or raw logits) computed by
transformers on the same folder, with TEI's labels and order.
"""

from __future__ import annotations

import numpy as np
import pytest
import requests
import torch

from tests.conftest import CLASSIFIER_LABELS
from tests.reference import assert_tei_error

TEXT = "I like you. I love you."
PAIR = ["What is the capital of France?", "Paris is the capital of France."]
LONG = " ".join(["the quick brown fox jumps over the lazy dog near the river bank"] * 12)


class Reference:
    """transformers on the folder, one input at a time (no padding)."""

    def __init__(self, folder) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()

    @torch.inference_mode()
    def logits(self, inputs, truncation_side: str = "right") -> np.ndarray:
        self.tokenizer.truncation_side = truncation_side
        try:
            encoded = self.tokenizer(*inputs, truncation=True, return_tensors="pt")
        finally:
            self.tokenizer.truncation_side = "right"
        return self.model(**encoded).logits[0].double().numpy()

    def scores(self, inputs, raw: bool = False, truncation_side: str = "right") -> np.ndarray:
        logits = self.logits(inputs, truncation_side)
        if raw:
            return logits
        if logits.shape[0] == 1:
            return torch.sigmoid(torch.from_numpy(logits)).numpy()
        return torch.softmax(torch.from_numpy(logits), dim=0).numpy()

    def answer(self, inputs, raw: bool = False, truncation_side: str = "right") -> list[dict]:
        """TEI's answer: every label, ascending stable sort then reversed."""
        scores = self.scores(inputs, raw, truncation_side)
        labels = self.model.config.id2label
        order = list(reversed(sorted(range(len(scores)), key=lambda i: scores[i])))  # noqa: C413
        return [{"score": float(scores[i]), "label": labels[i]} for i in order]


@pytest.fixture(scope="module")
def classifier_reference(classifier_folder) -> Reference:
    return Reference(classifier_folder)


def post(server, path: str, body) -> requests.Response:
    return requests.post(server.url + path, json=body, timeout=60)


def predict(server, **body):
    response = post(server, "/predict", body)
    assert response.status_code == 200, response.text
    return response.json()


def assert_same_answer(got: list[dict], expected: list[dict]) -> None:
    assert [item["label"] for item in got] == [item["label"] for item in expected], (got, expected)
    np.testing.assert_allclose(
        [item["score"] for item in got], [item["score"] for item in expected], rtol=1e-5, atol=1e-6
    )
    assert all(set(item) == {"score", "label"} for item in got)


def test_single_text_pair_and_batch_match_transformers(classifier_server, classifier_reference):
    ref = classifier_reference
    single = predict(classifier_server, inputs=TEXT)
    assert_same_answer(single, ref.answer([TEXT]))
    assert {item["label"] for item in single} == set(CLASSIFIER_LABELS.values())
    assert sum(item["score"] for item in single) == pytest.approx(1.0, abs=1e-6)

    # ["a"] is one text, ["a", "b"] is ONE pair (not a batch of two).
    assert_same_answer(predict(classifier_server, inputs=[TEXT]), ref.answer([TEXT]))
    pair = predict(classifier_server, inputs=PAIR)
    assert_same_answer(pair, ref.answer(PAIR))
    assert pair != single

    batch_inputs = [[TEXT], PAIR, ["x"], [PAIR[1], PAIR[0]], [LONG]]
    batch = predict(classifier_server, inputs=batch_inputs)
    assert isinstance(batch, list) and len(batch) == len(batch_inputs)
    for got, inputs in zip(batch, batch_inputs):
        assert_same_answer(got, ref.answer(inputs))


def test_raw_scores_are_the_logits(classifier_server, classifier_reference):
    ref = classifier_reference
    assert_same_answer(
        predict(classifier_server, inputs=TEXT, raw_scores=True), ref.answer([TEXT], raw=True)
    )
    batch = predict(classifier_server, inputs=[PAIR, [TEXT]], raw_scores=True)
    assert_same_answer(batch[0], ref.answer(PAIR, raw=True))
    assert_same_answer(batch[1], ref.answer([TEXT], raw=True))


def test_long_inputs_are_truncated_like_the_tokenizer(classifier_server, classifier_reference):
    ref = classifier_reference
    assert len(ref.tokenizer(LONG)["input_ids"]) > 128
    for inputs in ([LONG], [LONG, PAIR[0]], [LONG, LONG]):
        for side in ("right", "left"):
            got = predict(
                classifier_server,
                inputs=inputs if len(inputs) == 2 else inputs[0],
                raw_scores=True,
                truncate=True,
                truncation_direction=side,
            )
            assert_same_answer(got, ref.answer(inputs, raw=True, truncation_side=side))
    response = post(classifier_server, "/predict", {"inputs": LONG, "truncate": False})
    assert response.status_code == 422, response.text
    given = len(ref.tokenizer(LONG)["input_ids"])
    assert response.json() == {
        "error": f"Input validation error: `inputs` must have less than 128 tokens. Given: {given}",
        "error_type": "Validation",
    }


def test_predict_on_a_reranker_is_a_sigmoid(reranker_server, reranker_folder):
    ref = Reference(reranker_folder("bert"))
    server = reranker_server("bert")
    got = predict(server, inputs=PAIR)
    assert_same_answer(got, ref.answer(PAIR))
    assert got[0]["label"] == "LABEL_0" and 0 < got[0]["score"] < 1
    assert_same_answer(predict(server, inputs=PAIR, raw_scores=True), ref.answer(PAIR, raw=True))
    # /predict with a pair and /rerank score the same (query, text) pair the same way.
    ranked = post(server, "/rerank", {"query": PAIR[0], "texts": [PAIR[1]]}).json()
    assert ranked[0]["score"] == pytest.approx(got[0]["score"], rel=1e-6)


def test_info_reports_a_classifier(classifier_server):
    info = requests.get(classifier_server.url + "/info", timeout=30).json()
    assert info["model_type"] == {
        "classifier": {
            "id2label": {"0": "sad", "1": "calm", "2": "happy"},
            "label2id": {"sad": 0, "calm": 1, "happy": 2},
        }
    }


def test_root_and_invocations_predict(classifier_server):
    for body in ({"inputs": TEXT}, {"inputs": [[TEXT], PAIR], "raw_scores": True}):
        expected = predict(classifier_server, **body)
        for path in ("/", "/invocations"):
            response = post(classifier_server, path, body)
            assert response.status_code == 200, (path, response.text)
            assert response.json() == expected
    vertex = post(classifier_server, "/vertex", {"instances": [{"inputs": TEXT}, {"inputs": PAIR}]})
    assert vertex.status_code == 200, vertex.text
    assert vertex.json() == {
        "predictions": [
            predict(classifier_server, inputs=TEXT),
            predict(classifier_server, inputs=PAIR),
        ]
    }


SHAPE_ERRORS = [["a", "b", "c"], [], ["a", ["b"]], [["a"], "b"], [["a", "b", "c"]], [[]], 5]


@pytest.mark.parametrize("inputs", SHAPE_ERRORS, ids=repr)
def test_malformed_inputs_are_422(classifier_server, inputs):
    response = post(classifier_server, "/predict", {"inputs": inputs})
    assert response.status_code == 422, response.text
    assert response.json()["error_type"] == "Validation"


ERROR_CASES = [
    ("/predict", {"inputs": ""}, 400, "Input validation error: `inputs` cannot be empty", "Empty"),
    (
        "/predict",
        {"inputs": ["", ""]},
        400,
        "Input validation error: `inputs` cannot be empty",
        "Empty",
    ),
    (
        "/predict",
        {"inputs": [["a"], [""]]},
        400,
        "Input validation error: `inputs` cannot be empty",
        "Empty",
    ),
    (
        "/predict",
        {"inputs": [["a"]] * 33},
        422,
        "batch size 33 > maximum allowed batch size 32",
        "Validation",
    ),
    ("/embed", {"inputs": "a"}, 424, "Backend error: Model is not an embedding model", "Backend"),
    (
        "/embed_sparse",
        {"inputs": "a"},
        424,
        "Backend error: Model is not an embedding model with SPLADE pooling",
        "Backend",
    ),
]


@pytest.mark.parametrize("path,body,status,message,error_type", ERROR_CASES)
def test_errors(classifier_server, path, body, status, message, error_type):
    assert_tei_error(post(classifier_server, path, body), status, message, error_type)


def test_one_empty_side_of_a_pair_is_fine(classifier_server, classifier_reference):
    got = predict(classifier_server, inputs=["", "some text"], raw_scores=True)
    assert_same_answer(got, classifier_reference.answer(["", "some text"], raw=True))


def test_predict_on_an_embedding_model_is_424(splade_server):
    for inputs in ("a", ["a", "b"], [["a"], ["b"]]):
        response = post(splade_server, "/predict", {"inputs": inputs})
        assert response.status_code == 424, response.text
        assert response.json() == {
            "error": "Backend error: Model is not a classifier model",
            "error_type": "Backend",
        }


def test_vertex_rerank_instance_on_a_classifier_is_424(classifier_server):
    """TEI's /vertex reranks any instance with `query` and `texts`, whatever the model."""
    response = post(classifier_server, "/vertex", {"instances": [{"query": "a", "texts": ["b"]}]})
    assert response.status_code == 424, response.text
    assert response.json() == {
        "error": "Backend error: model is not a re-ranker model",
        "error_type": "Backend",
    }
