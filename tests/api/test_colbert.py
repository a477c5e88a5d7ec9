"""ColBERT multi-vector output through real servers, equal to
`pylate.models.ColBERT(folder).encode(texts, is_query=...)` on the same folder. PyLate runs
in its own environment (.venv-pylate, `make install-test`), which also builds the folder from
the bundled MiniLM as a PyLate user would."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests

from tei_bento.model.source import default_model_path

REPO = Path(__file__).resolve().parents[2]
TEXTS = {
    "queries": [
        "what is deep learning?",
        "hello",
        " ".join(f"word{i}" for i in range(60)),  # longer than query_length: cut
    ],
    "documents": [
        "Deep learning is a branch of machine learning; it uses neural networks!",
        "The cat sat on the mat. (It was happy.)",
        "a document about the sea " * 60,  # longer than document_length: cut
    ],
}


def pylate_python() -> str:
    python = os.environ.get("PYLATE_PYTHON") or str(REPO / ".venv-pylate" / "bin" / "python")
    if not Path(python).exists():
        raise RuntimeError(f"no PyLate reference environment at {python}: run `make install-test`")
    return python


@pytest.fixture(scope="session")
def colbert(tmp_path_factory):
    """(folders by name, PyLate's answers by folder name)."""
    out = tmp_path_factory.mktemp("colbert")
    texts_file = out / "texts.json"
    texts_file.write_text(json.dumps(TEXTS))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [pylate_python(), str(REPO / "tests" / "pylate_reference.py"), str(default_model_path()), str(out), str(texts_file)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    folders = {"default": out / "tiny-colbert", "attending": out / "tiny-colbert-attending"}
    return folders, json.loads((out / "reference.json").read_text())


@pytest.fixture(scope="module")
def served(colbert, server_pool):
    folders, _ = colbert
    return {name: server_pool("--model-id", str(folder)) for name, folder in folders.items()}


def multi_vector(server, **body) -> requests.Response:
    return requests.post(server.url + "/embed_multi_vector", json=body, timeout=60)


def assert_same_token_vectors(got, want):
    assert [len(v) for v in got] == [len(v) for v in want]
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5)


@pytest.mark.parametrize("variant", ["default", "attending"])
@pytest.mark.parametrize("kind, is_query", [("queries", True), ("documents", False)])
def test_token_vectors_equal_pylate(served, colbert, variant, kind, is_query):
    answer = multi_vector(served[variant], inputs=TEXTS[kind], is_query=is_query)
    assert answer.status_code == 200, answer.text
    assert_same_token_vectors(answer.json(), colbert[1][variant][kind])


def test_the_two_variants_differ_only_for_queries(colbert):
    reference = colbert[1]
    assert not np.allclose(reference["default"]["queries"][0], reference["attending"]["queries"][0])
    assert np.allclose(reference["default"]["documents"][0], reference["attending"]["documents"][0])


def test_queries_are_expanded_and_documents_skip_punctuation(served, colbert):
    server = served["default"]
    [query] = multi_vector(server, inputs="hello", is_query=True).json()
    assert len(query) == 32  # query_length, expansion tokens included
    [document] = multi_vector(server, inputs="hello, world!", is_query=False).json()
    assert len(document) == 5  # [CLS] [D] hello world [SEP]: ',' and '!' are skiplist words
    assert np.allclose(np.linalg.norm(np.asarray(document), axis=1), 1.0, atol=1e-5)


def test_info_and_errors(served, default_server):
    server = served["default"]
    info = requests.get(server.url + "/info", timeout=10).json()
    assert info["model_type"] == {
        "multi_vector": {
            "dimension": 128, "query_length": 32, "document_length": 180,
            "query_prefix": "[Q] ", "document_prefix": "[D] ",
        }
    }  # fmt: skip
    refused = multi_vector(server, inputs=TEXTS["documents"][2], is_query=False, truncate=False)
    assert refused.status_code == 422 and refused.json()["error_type"] == "Validation"
    assert multi_vector(server, inputs="", is_query=False).status_code == 400
    assert multi_vector(server, inputs="a", is_query="maybe").status_code == 422
    assert requests.post(server.url + "/embed", json={"inputs": "a"}, timeout=30).status_code == 424
    wrong = multi_vector(default_server, inputs="a")
    assert wrong.status_code == 424
    assert wrong.json() == {"error": "Backend error: Model is not a multi-vector (ColBERT) model", "error_type": "Backend"}
