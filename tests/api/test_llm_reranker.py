"""LLM rerankers (Qwen3-Reranker kind) through a real server, against the model card's own
plain-transformers code on the same tiny random Qwen3 causal LM and its real tokenizer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import requests

from tests.model_factory import build_llm_reranker

QUERY = "where did the cat sit"
DOCUMENTS = [
    "the cat sat on the mat",
    "a dog ran in the park and then went home",
    "weather report for today: sunny with a few clouds",
    "the cat",
]
LONG_DOCUMENT = "the quick brown fox jumps over the lazy dog " * 60
CARD_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


class CardReference:
    """Qwen3-Reranker's model card code (transformers usage), on a local folder."""

    def __init__(self, folder, max_length: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(folder).eval()
        self.yes = self.tokenizer.convert_tokens_to_ids("yes")
        self.no = self.tokenizer.convert_tokens_to_ids("no")
        self.max_length = max_length
        prefix = (
            "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
            'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
        )
        suffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
        self.prefix_tokens = self.tokenizer.encode(prefix, add_special_tokens=False)
        self.suffix_tokens = self.tokenizer.encode(suffix, add_special_tokens=False)

    @staticmethod
    def format_instruction(instruction, query, doc):
        if instruction is None:
            instruction = CARD_INSTRUCTION
        return "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}".format(
            instruction=instruction, query=query, doc=doc
        )

    def process_inputs(self, pairs):
        inputs = self.tokenizer(
            pairs,
            padding=False,
            truncation="longest_first",
            return_attention_mask=False,
            max_length=self.max_length - len(self.prefix_tokens) - len(self.suffix_tokens),
        )
        for i, ele in enumerate(inputs["input_ids"]):
            inputs["input_ids"][i] = self.prefix_tokens + ele + self.suffix_tokens
        return self.tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=self.max_length)

    def scores(self, query, documents, instruction=None, raw=False) -> list[float]:
        pairs = [self.format_instruction(instruction, query, doc) for doc in documents]
        with self.torch.no_grad():
            batch_scores = self.model(**self.process_inputs(pairs)).logits[:, -1, :]
            true_vector = batch_scores[:, self.yes]
            false_vector = batch_scores[:, self.no]
            if raw:  # the log-odds tei-bento answers with raw_scores
                return (true_vector - false_vector).tolist()
            stacked = self.torch.stack([false_vector, true_vector], dim=1)
            return self.torch.nn.functional.log_softmax(stacked, dim=1)[:, 1].exp().tolist()


@pytest.fixture(scope="module")
def llm_reranker(models_dir, server_pool):
    folder = build_llm_reranker(models_dir / "tiny-Qwen3-Reranker")
    server = server_pool("--model-id", str(folder))
    info = requests.get(server.url + "/info", timeout=10).json()
    return server, CardReference(folder, info["max_input_length"])


def by_index(results, key):
    return [r[key] for r in sorted(results, key=lambda r: r["index"])]


def assert_close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_detected_from_its_name_and_reported_as_teis_reranker(llm_reranker):
    server, _ = llm_reranker
    info = requests.get(server.url + "/info", timeout=10).json()
    assert info["model_type"] == {"reranker": {"id2label": {"0": "yes"}, "label2id": {"yes": 0}}}


def test_teis_rerank_equals_the_model_card(llm_reranker):
    server, card = llm_reranker
    answer = requests.post(server.url + "/rerank", json={"query": QUERY, "texts": DOCUMENTS}, timeout=60)
    assert answer.status_code == 200, answer.text
    ranks = answer.json()
    want = card.scores(QUERY, DOCUMENTS)
    assert_close(by_index(ranks, "score"), want)
    assert [r["index"] for r in ranks] == sorted(range(len(want)), key=lambda i: -want[i])


def test_cohere_forms_instruction_and_raw_scores(llm_reranker):
    server, card = llm_reranker
    instruction = "Find the passage about animals"
    body = {"query": QUERY, "documents": DOCUMENTS, "instruction": instruction, "model": "any"}
    for path in ("/rerank", "/v1/rerank"):
        answer = requests.post(server.url + path, json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        assert_close(by_index(answer.json()["results"], "relevance_score"), card.scores(QUERY, DOCUMENTS, instruction))
    assert not np.allclose(card.scores(QUERY, DOCUMENTS, instruction), card.scores(QUERY, DOCUMENTS))
    raw = requests.post(server.url + "/rerank", json={"query": QUERY, "texts": DOCUMENTS, "raw_scores": True})
    assert_close(by_index(raw.json(), "score"), card.scores(QUERY, DOCUMENTS, raw=True))


def test_a_long_document_is_truncated_as_the_card_truncates(llm_reranker):
    server, card = llm_reranker
    texts = [LONG_DOCUMENT, "short"]
    answer = requests.post(server.url + "/rerank", json={"query": QUERY, "texts": texts, "truncate": True})
    assert answer.status_code == 200, answer.text
    assert_close(by_index(answer.json(), "score"), card.scores(QUERY, texts))
    refused = requests.post(server.url + "/rerank", json={"query": QUERY, "texts": texts, "truncate": False})
    assert refused.status_code == 413 or refused.status_code == 422, refused.text
    assert refused.json()["error_type"] == "Validation"


def test_predict_scores_pairs_and_refuses_single_texts(llm_reranker):
    server, card = llm_reranker
    pair = requests.post(server.url + "/predict", json={"inputs": [[QUERY, DOCUMENTS[0]]]}, timeout=60)
    assert pair.status_code == 200, pair.text
    [[prediction]] = pair.json()
    assert prediction["label"] == "yes"
    assert math.isclose(prediction["score"], card.scores(QUERY, DOCUMENTS[:1])[0], rel_tol=1e-4, abs_tol=1e-5)
    single = requests.post(server.url + "/predict", json={"inputs": "just one text"}, timeout=60)
    assert single.status_code == 422
    assert single.json() == {
        "error": "Input validation error: an LLM reranker scores (query, document) pairs",
        "error_type": "Validation",
    }


def test_instruction_is_refused_where_no_llm_reranker_serves(default_server):
    answer = requests.post(
        default_server.url + "/rerank", json={"query": "q", "texts": ["a"], "instruction": "x"}, timeout=30
    )
    assert answer.status_code == 424, answer.text  # TEI's answer first: no reranker is served


def test_tied_embeddings_give_the_head_rows(tmp_path):
    """A folder that ties its LM head to the input embeddings has no lm_head weight."""
    from transformers import AutoConfig

    from tei_bento.tasks.llm_reranker import lm_head_rows

    folder = build_llm_reranker(tmp_path / "tied-reranker", tie_word_embeddings=True)
    config = AutoConfig.from_pretrained(folder)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    want = model.get_output_embeddings().weight[[5, 7]].detach()
    assert np.allclose(lm_head_rows(folder, config, [5, 7]).numpy(), want.numpy())


def test_instruction_is_refused_by_a_cross_encoder(reranker_server):
    server = reranker_server("bert")
    body = {"query": "q", "texts": ["a", "b"], "instruction": "judge it"}
    answer = requests.post(server.url + "/rerank", json=body, timeout=30)
    assert answer.status_code == 422
    assert answer.json() == {
        "error": "Input validation error: `instruction` is only available for LLM rerankers",
        "error_type": "Validation",
    }


def test_cohere_client_v2_on_the_llm_reranker(llm_reranker):
    import cohere

    server, card = llm_reranker
    answer = cohere.ClientV2(api_key="unused", base_url=server.url).rerank(
        model="qwen3-reranker", query=QUERY, documents=DOCUMENTS
    )
    assert_close(by_index([r.dict() for r in answer.results], "relevance_score"), card.scores(QUERY, DOCUMENTS))
