"""Short requests are tokenized on the event loop, long ones in the pool, identically."""

from __future__ import annotations

import asyncio
import threading

import pytest
from tokenizers import Tokenizer

from tei_bento.engine.tokenization import INLINE_CHARS, PromptConfig, TokenizerPool
from tei_bento.model.source import default_model_path


@pytest.fixture(scope="module")
def pool():
    tokenizer = Tokenizer.from_file(str(default_model_path() / "tokenizer.json"))
    pool = TokenizerPool(tokenizer, 256, PromptConfig({}), workers=1)
    yield pool
    pool.close()


def encode_on(pool: TokenizerPool, inputs) -> tuple[list, set[str]]:
    """Encode, and say which threads ran the tokenizer."""
    threads: set[str] = set()
    original = pool._encode_all

    def spy(*args):
        threads.add(threading.current_thread().name)
        return original(*args)

    pool._encode_all = spy  # type: ignore[method-assign]
    try:
        return asyncio.run(pool.encode(inputs, truncate=True)), threads
    finally:
        del pool._encode_all


def test_short_inputs_skip_the_thread_hop(pool):
    encoded, threads = encode_on(pool, ["What is deep learning?", "a second short text"])
    assert threads == {threading.current_thread().name}
    assert encoded[0].ids == pool.tokenizer.encode("What is deep learning?").ids


def test_long_inputs_go_to_the_pool_with_the_same_result(pool):
    long_text = "the quick brown fox jumps over the lazy dog " * (INLINE_CHARS // 40)
    assert len(long_text) > INLINE_CHARS
    encoded, threads = encode_on(pool, [long_text])
    assert len(threads) == 1 and next(iter(threads)).startswith("tokenizer")
    short, _ = encode_on(pool, [long_text[:INLINE_CHARS]])
    assert len(encoded[0].ids) == len(short[0].ids) == 256  # truncated alike either way
