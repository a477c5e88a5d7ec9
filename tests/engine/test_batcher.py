"""The token-budget batcher: budgets kept, the oldest input always served, padding low."""

from __future__ import annotations

import asyncio
import random

import pytest

from tei_bento.engine.batcher import Batcher, WorkItem
from tei_bento.errors import BackendError


def make_items(loop: asyncio.AbstractEventLoop, lengths: list[int]) -> list[WorkItem]:
    return [WorkItem([1] * n, [0] * n, None, loop.create_future()) for n in lengths]


def take_all(batcher: Batcher) -> list[list[WorkItem]]:
    batches = []
    while batch := batcher._take_batch():
        batches.append(batch)
    return batches


@pytest.mark.parametrize("seed", range(5))
def test_batches_respect_budgets_and_serve_everyone(seed):
    rng = random.Random(seed)
    loop = asyncio.new_event_loop()
    try:
        lengths = [rng.choice([8, 12, 16, 40, 120, 250]) for _ in range(200)]
        batcher = Batcher(lambda b: [], max_batch_tokens=1024, max_batch_requests=64)
        items = make_items(loop, lengths)
        batcher._waiting.extend(items)
        batches = take_all(batcher)
        served = [item for batch in batches for item in batch]
        assert sorted(map(id, served)) == sorted(map(id, items))
        for batch in batches:
            assert len(batch) <= 64
            assert len(batch) * max(i.length for i in batch) <= 1024
        # the oldest waiting input is always in the next batch
        batcher._waiting.extend(items)
        first = batcher._take_batch()
        assert items[0] in first
        real = sum(lengths)
        padded = sum(len(b) * max(i.length for i in b) for b in batches)
        assert real / padded > 0.9
    finally:
        loop.close()


def test_short_inputs_merge_long_ones_wait_for_their_own_batch():
    loop = asyncio.new_event_loop()
    try:
        batcher = Batcher(lambda b: [], max_batch_tokens=10_000)
        items = make_items(loop, [5, 250, 7, 6, 240])
        batcher._waiting.extend(items)
        assert batcher._take_batch() == [items[0], items[3], items[2]]  # 5, 6, 7: one batch
        assert batcher._take_batch() == [items[4], items[1]]  # the long pair, together
    finally:
        loop.close()


def test_mixed_queue_is_batched_efficiently():
    rng = random.Random(7)
    loop = asyncio.new_event_loop()
    try:
        lengths = [rng.randint(8, 24) for _ in range(90)] + [rng.randint(90, 160) for _ in range(25)]
        lengths += [256] * 5
        rng.shuffle(lengths)
        batcher = Batcher(lambda b: [], max_batch_tokens=16384)
        batcher._waiting.extend(make_items(loop, lengths))
        batches = take_all(batcher)
        padded = sum(len(b) * max(i.length for i in b) for b in batches)
        assert sum(lengths) / padded >= 0.9
        assert len(batches) < 20
    finally:
        loop.close()


def test_preferred_tokens_cap_growth_but_never_refuse_a_long_input():
    loop = asyncio.new_event_loop()
    try:
        batcher = Batcher(lambda b: [], max_batch_tokens=16384, preferred_tokens=256)
        items = make_items(loop, [16] * 40 + [600])
        batcher._waiting.extend(items)
        batches = take_all(batcher)
        assert [len(b) for b in batches] == [16, 16, 8, 1]  # 16 x 16 = 256 tokens each
        assert batches[-1] == [items[-1]]  # longer than the cap alone: still served
        uncapped = Batcher(lambda b: [], max_batch_tokens=16384)
        uncapped._waiting.extend(items[:40])
        assert len(uncapped._take_batch()) == 40
    finally:
        loop.close()


def test_cancelled_items_are_dropped_from_the_queue():
    loop = asyncio.new_event_loop()
    try:
        batcher = Batcher(lambda b: [], max_batch_tokens=10_000)
        items = make_items(loop, [5, 6, 7])
        items[1].future.cancel()
        batcher._waiting.extend(items)
        assert batcher._take_batch() == [items[0], items[2]]
    finally:
        loop.close()


def test_failing_batch_fails_only_its_own_requests():
    calls = []

    def run(batch):
        calls.append(len(batch))
        if any(item.job == "boom" for item in batch):
            raise RuntimeError("forward pass exploded")
        return [item.length for item in batch]

    async def scenario():
        batcher = Batcher(run, max_batch_tokens=10_000)
        loop = asyncio.get_running_loop()
        bad = WorkItem([1, 2], [0, 0], "boom", loop.create_future())
        with pytest.raises(BackendError, match="forward pass exploded"):
            await batcher.submit([bad])
        good = WorkItem([1, 2, 3], [0, 0, 0], "ok", loop.create_future())
        assert await batcher.submit([good]) == [3]
        await batcher.stop()

    asyncio.run(scenario())
    assert calls == [1, 1]


def test_concurrent_submissions_share_batches():
    sizes = []

    def run(batch):
        sizes.append(len(batch))
        return [None] * len(batch)

    async def scenario():
        batcher = Batcher(run, max_batch_tokens=10_000)
        loop = asyncio.get_running_loop()
        jobs = [batcher.submit(make_items(loop, [4])) for _ in range(20)]
        await asyncio.gather(*jobs)
        await batcher.stop()

    asyncio.run(scenario())
    assert sum(sizes) == 20 and len(sizes) < 20

