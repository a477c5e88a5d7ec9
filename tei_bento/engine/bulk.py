"""Many texts through one engine without crowding out interactive requests.

A bulk job (BentoML's `embed_batch` task, a corpus) is cut into chunks that go through the
same permits and token-budget batcher as every request. It holds at most a share of the
engine's permits at a time (a quarter by default), in a few chunks, so that:

- the batcher always has the next chunk waiting when a forward pass ends (the model never
  idles between chunks), and
- an interactive request that arrives meanwhile finds free permits and waits behind at most
  those few chunks, since the batcher always serves the oldest input next.

When interactive traffic holds the rest of the permits and a chunk is refused (429), the
chunk waits a moment and tries again: the bulk job yields, the interactive request is served.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

from tei_bento.engine.engine import Engine, Result, Timings
from tei_bento.errors import OverloadedError

BULK_PERMIT_SHARE = 0.25
"""The share of an engine's permits a bulk job may hold at once."""
CHUNKS_IN_FLIGHT = 4
RETRY_AFTER_S = 0.02


@dataclass(frozen=True)
class ChunkPlan:
    size: int
    in_flight: int

    @classmethod
    def for_engine(cls, engine: Engine, share: float = BULK_PERMIT_SHARE) -> "ChunkPlan":
        settings = engine.settings
        budget = max(1, int(settings.max_concurrent_requests * share))
        size = max(1, min(settings.max_client_batch_size, -(-budget // CHUNKS_IN_FLIGHT)))
        return cls(size=size, in_flight=max(1, min(CHUNKS_IN_FLIGHT, budget // size)))


def merge_timings(parts: Sequence[Timings]) -> Timings:
    """One request's timings from its chunks' (sums, and input-weighted means)."""
    count = sum(len(p.lengths) for p in parts) or 1
    return Timings(
        chars=sum(p.chars for p in parts),
        tokens=sum(p.tokens for p in parts),
        tokenization=sum(p.tokenization for p in parts),
        queue=sum(p.queue * len(p.lengths) for p in parts) / count,
        inference=sum(p.inference * len(p.lengths) for p in parts) / count,
        started_at=min((p.started_at for p in parts), default=0.0),
        lengths=[n for p in parts for n in p.lengths],
    )


async def run_in_chunks(
    engine: Engine,
    inputs: Sequence[Any],
    call: Callable[[list[Any]], Awaitable[Result[Any]]],
    on_chunk: Callable[[int], None] | None = None,
    plan: ChunkPlan | None = None,
) -> Result[Any]:
    """`call` on consecutive chunks of `inputs` (e.g. `lambda c: engine.embed(c)`), a few at
    a time; the values come back in input order. `on_chunk(n)` reports n more inputs done.
    The first error other than overload fails the whole job (the rest are cancelled)."""
    plan = plan or ChunkPlan.for_engine(engine)
    starts = range(0, len(inputs), plan.size)
    results: list[Result[Any] | None] = [None] * len(starts)
    pending = iter(enumerate(starts))  # shared by the workers: each takes the next chunk

    async def worker() -> None:
        for index, start in pending:
            chunk = list(inputs[start : start + plan.size])
            while True:
                try:
                    results[index] = await call(chunk)
                    break
                except OverloadedError:  # interactive requests hold the permits: let them pass
                    await asyncio.sleep(RETRY_AFTER_S)
            if on_chunk is not None:
                on_chunk(len(chunk))

    workers = [asyncio.ensure_future(worker()) for _ in range(min(plan.in_flight, len(starts)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
    done = [r for r in results if r is not None]
    return Result([v for r in done for v in r.values], merge_timings([r.timings for r in done]))
