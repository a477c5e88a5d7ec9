"""The memory math behind configs/ and `tei-bento truss`: calibration, limits, consistency."""

from __future__ import annotations

import dataclasses

import pytest

from tei_bento.deploy.model_classes import MODEL_CLASSES, guess_model_class
from tei_bento.deploy.presets import all_sizings
from tei_bento.deploy.sizing import (
    CONCURRENCY_RANGE,
    GPUS,
    DoesNotFit,
    activation_budget_gib,
    size,
    size_shared,
)


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


def test_a_shared_gpu_splits_the_activation_memory_after_all_the_weights():
    """Three bert-large on an 8 GiB card: memory binds, so each gets a smaller batch."""
    tight = dataclasses.replace(GPUS["H100"], memory_gib=8.0)
    model = MODEL_CLASSES["bert-large"]
    shared = size_shared([model] * 3, tight)
    alone = size(model, tight)
    assert shared.budget_gib == pytest.approx(activation_budget_gib(tight, 3 * model.weights_gib))
    assert shared.share_gib == pytest.approx(shared.budget_gib / 3)
    for s, memory in zip(shared.sizings, shared.alone_memory_tokens):
        assert memory == alone.memory_tokens
        assert s.memory_tokens < alone.memory_tokens / 3  # a third of less than the whole
        assert model.max_input_length <= s.max_batch_tokens < alone.max_batch_tokens
        assert s.max_batch_tokens <= s.memory_tokens


def test_every_shared_model_gets_at_most_what_it_would_get_alone():
    models = [MODEL_CLASSES[name] for name in ("bert-small", "decoder-7b", "reranker-base")]
    shared = size_shared(models, GPUS["L4"])
    for s in shared.sizings:
        alone = size(s.model, GPUS["L4"])
        assert s.memory_tokens < alone.memory_tokens
        assert s.max_batch_tokens <= alone.max_batch_tokens
        assert s.compute_tokens == alone.compute_tokens  # compute is shared, not split
    assert shared.sizings[0].max_batch_tokens < size(models[0], GPUS["L4"]).max_batch_tokens


def test_shared_concurrency_is_the_sum_and_permits_cover_it_for_every_model():
    models = [MODEL_CLASSES["bert-large"], MODEL_CLASSES["reranker-large"]]
    shared = size_shared(models, GPUS["A10G"])
    low, high = CONCURRENCY_RANGE
    own = sum(s.predict_concurrency for s in shared.sizings)
    assert shared.predict_concurrency == min(high, max(low, own))
    for s in shared.sizings:
        assert shared.max_concurrent_requests(s) == shared.predict_concurrency * (
            s.max_client_batch_size
        )
    given = size_shared(models, GPUS["A10G"], predict_concurrency=12)
    assert given.predict_concurrency == 12 and given.concurrency_given


def test_shared_overrides_apply_to_their_model_only():
    models = [MODEL_CLASSES["bert-base"], MODEL_CLASSES["bert-base"]]
    shared = size_shared(models, GPUS["L4"], overrides=[{"max_batch_tokens": 2048}, {}])
    assert shared.sizings[0].max_batch_tokens == 2048
    assert (
        shared.sizings[1].max_batch_tokens
        == size_shared(models, GPUS["L4"]).sizings[1].max_batch_tokens
    )
    assert "max_batch_tokens" in shared.given[0] and not shared.given[1]


def test_models_that_fit_alone_may_not_fit_together():
    names = ("decoder-7b", "decoder-1.5b", "reranker-large")
    for name in names:
        size(MODEL_CLASSES[name], GPUS["L4"])  # each one alone fits
    with pytest.raises(
        DoesNotFit, match=r"3 models do not fit one L4 .* decoder-7b needs 0.91 GiB"
    ):
        size_shared([MODEL_CLASSES[name] for name in names], GPUS["L4"])
    with pytest.raises(DoesNotFit, match=r"their weights alone take 26.5 GiB"):
        size_shared([MODEL_CLASSES["decoder-7b"]] * 2, GPUS["L4"])
