"""Bulk jobs in chunks (tei_bento/engine/bulk.py): order kept, a bounded share of the
permits in flight, overload waited out, any other error fails the job."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from tei_bento.engine.bulk import ChunkPlan, merge_timings, run_in_chunks
from tei_bento.engine.engine import Result, Timings
from tei_bento.errors import OverloadedError, ValidationError


def engine(permits: int = 512, client_batch: int = 32) -> SimpleNamespace:
    return SimpleNamespace(
        settings=SimpleNamespace(max_concurrent_requests=permits, max_client_batch_size=client_batch)
    )


@pytest.mark.parametrize(
    ("permits", "client_batch", "size", "in_flight"),
    [(512, 32, 32, 4), (512, 16, 16, 4), (8192, 512, 512, 4), (4, 32, 1, 1), (1, 32, 1, 1), (16, 32, 1, 4)],
)
def test_a_job_holds_at_most_a_quarter_of_the_permits(permits, client_batch, size, in_flight):
    plan = ChunkPlan.for_engine(engine(permits, client_batch))
    assert (plan.size, plan.in_flight) == (size, in_flight)
    assert plan.size <= client_batch and plan.size * plan.in_flight <= max(1, permits // 4)


def timings(n: int, tokens_each: int = 3) -> Timings:
    return Timings(chars=n, tokens=n * tokens_each, queue=0.5, inference=0.1, started_at=1.0,
                   lengths=[tokens_each] * n)  # fmt: skip


def test_values_come_back_in_input_order_with_bounded_concurrency():
    active, peak = 0, 0

    async def call(chunk):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.001 * (len(chunk) % 3))  # chunks finish out of order
        active -= 1
        return Result([f"v:{text}" for text in chunk], timings(len(chunk)))

    done = []
    texts = [str(i) for i in range(101)]
    plan = ChunkPlan(size=7, in_flight=3)
    result = asyncio.run(run_in_chunks(engine(), texts, call, on_chunk=done.append, plan=plan))
    assert result.values == [f"v:{t}" for t in texts]
    assert peak == 3 and sum(done) == 101
    assert result.timings.tokens == 303 and result.timings.lengths == [3] * 101


def test_overload_is_waited_out_not_failed():
    refusals = {"left": 3}

    async def call(chunk):
        if refusals["left"]:
            refusals["left"] -= 1
            raise OverloadedError()
        return Result(list(chunk), timings(len(chunk)))

    result = asyncio.run(run_in_chunks(engine(), list("abcdef"), call, plan=ChunkPlan(2, 2)))
    assert result.values == list("abcdef") and refusals["left"] == 0


def test_any_other_error_fails_the_job_and_stops_the_rest():
    started = []

    async def call(chunk):
        started.append(chunk[0])
        if chunk[0] == "c":
            raise ValidationError("too long")
        await asyncio.sleep(0.01)
        return Result(list(chunk), timings(len(chunk)))

    with pytest.raises(ValidationError, match="too long"):
        asyncio.run(run_in_chunks(engine(), list("abcdefghij"), call, plan=ChunkPlan(1, 3)))
    assert len(started) < 10  # the chunks after the failure never ran


def test_merged_timings_weight_by_inputs():
    merged = merge_timings([timings(1), Timings(tokens=30, queue=2.0, inference=1.0, started_at=0.5, lengths=[10, 10, 10])])
    assert merged.tokens == 33 and merged.started_at == 0.5
    assert merged.queue == pytest.approx((0.5 * 1 + 2.0 * 3) / 4)
    assert merged.inference == pytest.approx((0.1 + 3.0) / 4)
