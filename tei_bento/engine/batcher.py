"""Token-budget dynamic batching: a batch forms the moment the model is free.

There is no waiting window. While a forward pass runs in its own thread, new inputs pile
up in the queue; when it returns, the next batch is cut from whatever waits. A batch costs
`longest x count` tokens (the padded shape the model computes) and stays within
`max_batch_tokens` and `max_batch_requests`, and within `preferred_tokens` where smaller
batches run faster per token (CPU caches).

To waste little compute on padding, the batch is cut from the waiting inputs sorted by
length, in a window anchored on the oldest input: the oldest always goes next (no
starvation), and its companions are the inputs closest to it in length, taken while the
batch stays efficient (real tokens over computed tokens, a per-forward cost included).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from tei_bento.engine.memory import HeapTrimmer
from tei_bento.errors import BackendError, TEIError

log = logging.getLogger(__name__)


@dataclass(eq=False)
class WorkItem:
    """One input waiting for the model; `job` says what to compute for it."""

    ids: list[int]
    type_ids: list[int]
    job: Any
    future: asyncio.Future
    prompt_length: int = 0
    attention_length: int | None = None
    enqueued_at: float = field(default_factory=time.perf_counter)
    started_at: float = 0.0
    finished_at: float = 0.0

    @property
    def length(self) -> int:
        return len(self.ids)


class BatchObserver(Protocol):
    def batch_formed(self, size: int, tokens: int, padded_tokens: int, queued: int) -> None: ...


RunBatch = Callable[[list[WorkItem]], list[Any]]
"""Returns one result per item, in order; an exception in the list fails only that item."""


def padded_cost(count: int, longest: int) -> int:
    return count * longest


class Batcher:
    def __init__(
        self,
        run_batch: RunBatch,
        max_batch_tokens: int,
        max_batch_requests: int | None = None,
        observer: BatchObserver | None = None,
        padding_target: float = 0.9,
        overhead_tokens: int = 16,
        preferred_tokens: int | None = None,
    ) -> None:
        self._run_batch = run_batch
        self.padding_target = padding_target
        self.overhead_tokens = overhead_tokens
        # A batch grows up to this many padded tokens; one input alone may exceed it.
        self.grow_tokens = min(max_batch_tokens, preferred_tokens or max_batch_tokens)
        self.max_batch_requests = max_batch_requests
        self.observer = observer
        self._waiting: list[WorkItem] = []  # arrival order
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="model")
        self._trimmer = HeapTrimmer()

    def start(self) -> None:
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for item in self._waiting:
            if not item.future.done():
                item.future.set_exception(BackendError("server is shutting down"))
        self._waiting.clear()
        self.close()

    def close(self) -> None:
        """Let the model thread go (synchronous: also for an engine that never served)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def run_now_in_model_thread(self, fn: Callable[[], Any]) -> Any:
        """Blocking variant for start-up, before any event loop runs."""
        return self._executor.submit(fn).result()

    async def run_in_model_thread(self, fn: Callable[[], Any]) -> Any:
        """Run work that must not overlap a forward pass (health probes) on the model thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def submit(self, items: list[WorkItem]) -> list[Any]:
        """Queue items and wait for all of them; cancelling the wait drops them from the queue."""
        self.start()
        self._waiting.extend(items)
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            return list(await asyncio.gather(*(item.future for item in items)))
        except BaseException:
            for item in items:
                item.future.cancel()
            raise

    def _efficiency(self, real: int, count: int, longest: int) -> float:
        """Real tokens per token paid for: padding and a fixed per-forward cost included."""
        return real / (padded_cost(count, longest) + self.overhead_tokens)

    def _take_batch(self) -> list[WorkItem]:
        """The oldest input plus the waiting inputs closest to it in length.

        A neighbour joins while the batch stays within the budgets and either keeps the
        batch's efficiency at `padding_target` or raises it (a fixed per-forward cost makes
        small batches of short inputs worth merging even when their lengths differ).
        """
        self._waiting = [item for item in self._waiting if not item.future.done()]
        if not self._waiting:
            return []
        limit = self.max_batch_requests or len(self._waiting)
        by_length = sorted(self._waiting, key=lambda item: item.length)
        anchor = self._waiting[0]
        position = bisect.bisect_left([item.length for item in by_length], anchor.length)
        while by_length[position] is not anchor:
            position += 1
        low = high = position  # the batch is by_length[low : high + 1]
        longest = real = anchor.length
        while high - low + 1 < limit:
            count = high - low + 1
            current = self._efficiency(real, count, longest)
            options = []
            if low > 0:
                below = by_length[low - 1].length
                options.append((self._efficiency(real + below, count + 1, longest), -1, longest))
            if high + 1 < len(by_length):
                above = by_length[high + 1].length
                options.append((self._efficiency(real + above, count + 1, above), 1, above))
            accepted = [
                option
                for option in options
                if padded_cost(count + 1, option[2]) <= self.grow_tokens
                and (option[0] >= self.padding_target or option[0] >= current)
            ]
            if not accepted:
                break
            _, side, longest = max(accepted)
            if side < 0:
                low -= 1
                real += by_length[low].length
            else:
                high += 1
                real += by_length[high].length
        chosen = by_length[low : high + 1]
        chosen_ids = {id(item) for item in chosen}
        self._waiting = [item for item in self._waiting if id(item) not in chosen_ids]
        return chosen

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            batch = self._take_batch()
            if not batch:
                self._wakeup.clear()
                continue
            self._begin(batch)
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, batch)
            except TEIError as exc:
                self._fail(batch, exc)
                continue
            except Exception as exc:  # a failing batch fails its own requests only
                log.exception("Forward pass failed")
                self._fail(batch, BackendError(f"inference failed: {exc}"))
                continue
            if not self._waiting:
                loop.run_in_executor(self._executor, self._trimmer.maybe_trim)
            self._settle(batch, results)

    def _begin(self, batch: list[WorkItem]) -> None:
        if self.observer is not None:
            tokens = sum(item.length for item in batch)
            padded = padded_cost(len(batch), max(item.length for item in batch))
            self.observer.batch_formed(len(batch), tokens, padded, len(self._waiting))
        started = time.perf_counter()
        for item in batch:
            item.started_at = started

    @staticmethod
    def _settle(batch: list[WorkItem], results: list[Any]) -> None:
        finished = time.perf_counter()
        for item, result in zip(batch, results):
            item.finished_at = finished
            if item.future.done():
                continue
            if isinstance(result, BaseException):  # this input failed, the others did not
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    @staticmethod
    def _fail(batch: list[WorkItem], error: Exception) -> None:
        finished = time.perf_counter()
        for item in batch:
            item.finished_at = finished
            if not item.future.done():
                item.future.set_exception(error)
