"""The memory math behind configs/ and `tei-bento truss`: calibration, limits, consistency."""

from __future__ import annotations

import dataclasses

import pytest

from tei_bento.deploy.presets import MODEL_CLASSES, all_sizings, guess_model_class
from tei_bento.deploy.sizing import GPUS, DoesNotFit, size


def test_bert_large_on_l4_lands_where_the_tei_example_saw_gains_stop():
    sizing = size(MODEL_CLASSES["bert-large"], GPUS["L4"])
    assert sizing.max_batch_tokens == 16384
    assert sizing.predict_concurrency * 512 >= sizing.max_batch_tokens


def test_every_sizing_is_consistent_and_fits():
    fitted, skipped = all_sizings()
    assert len(fitted) == 34 and len(skipped) == 1
    for s in fitted:
        assert s.model.max_input_length <= s.max_batch_tokens <= s.memory_tokens
        assert s.max_batch_tokens & (s.max_batch_tokens - 1) == 0  # a power of two
        assert s.max_concurrent_requests == s.predict_concurrency * s.max_client_batch_size
        assert s.dtype == ("bfloat16" if s.model.decoder and s.gpu.name != "T4" else "float16")


def test_a_7b_model_does_not_fit_a_t4():
    with pytest.raises(DoesNotFit, match="decoder-7b needs 13.2 GiB"):
        size(MODEL_CLASSES["decoder-7b"], GPUS["T4"])


def test_memory_bounds_the_batch_when_compute_would_allow_more():
    tight = dataclasses.replace(GPUS["H100"], memory_gib=8.0)
    sizing = size(MODEL_CLASSES["decoder-1.5b"], tight)
    assert sizing.memory_tokens < sizing.compute_tokens
    assert sizing.max_batch_tokens <= sizing.memory_tokens


def test_bigger_gpus_never_get_smaller_batches():
    for model in MODEL_CLASSES.values():
        batches = []
        for gpu in ("L4", "A100", "H100"):
            batches.append(size(model, GPUS[gpu]).max_batch_tokens)
        assert batches == sorted(batches), model.name


@pytest.mark.parametrize(
    ("model_id", "task", "expected"),
    [
        ("sentence-transformers/all-MiniLM-L6-v2", "embed", "bert-small"),
        ("BAAI/bge-base-en-v1.5", "embed", "bert-base"),
        ("BAAI/bge-large-en-v1.5", "embed", "bert-large"),
        ("Alibaba-NLP/gte-Qwen2-1.5B-instruct", "embed", "decoder-1.5b"),
        ("intfloat/e5-mistral-7b-instruct", "embed", "decoder-7b"),
        ("BAAI/bge-reranker-base", "rerank", "reranker-base"),
        ("BAAI/bge-reranker-v2-m3", "rerank", "reranker-large"),
        ("SamLowe/roberta-base-go_emotions", "classify", "bert-base"),
    ],
)
def test_model_class_guess(model_id, task, expected):
    model = guess_model_class(model_id, task)
    assert model.name == expected and model.task == task
