"""Concurrency permits: one per input, taken all at once or not at all.

TEI answers 429 the moment permits run out instead of queueing the request, which is
what lets a load balancer move traffic elsewhere. Everything runs on the event loop,
so a plain counter is enough.

Callers that would rather wait than fail (a gRPC stream's messages, as in TEI) queue with
`acquire_waiting`, and the queue is fair, as TEI's tokio semaphore is: released permits go
to the oldest waiter first, and while anyone waits, `acquire` refuses. Without that, a
stream woken by a release had to retry against callers arriving that instant, and under a
flood of fail-fast retries (a 30-minute soak at 4x the permits) its messages waited up to
89 s while HTTP calls kept taking the permits it had been woken for.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque

from tei_bento.errors import OverloadedError

waiting_for_permits: contextvars.ContextVar[bool] = contextvars.ContextVar("waiting_for_permits", default=False)
"""Set by a caller that waits its turn for permits (a gRPC stream's message) instead of failing."""


class Permits:
    def __init__(self, total: int) -> None:
        self.total = total
        self.available = total
        self._queue: deque[tuple[int, asyncio.Future[PermitLease]]] = deque()

    def acquire(self, count: int) -> PermitLease:
        """All `count` permits now, or OverloadedError (also while others wait their turn)."""
        if count > self.available or self._queue:
            raise OverloadedError()
        self.available -= count
        return PermitLease(self, count)

    async def acquire_waiting(self, count: int) -> PermitLease:
        """All `count` permits, in turn: the oldest waiter is served first."""
        if count > self.total:
            raise OverloadedError()  # could never be granted
        if not self._queue and count <= self.available:
            return self.acquire(count)
        granted: asyncio.Future[PermitLease] = asyncio.get_running_loop().create_future()
        self._queue.append((count, granted))
        try:
            return await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                granted.result().release()  # granted just as it was cancelled: give it back
            else:
                granted.cancel()
                self._grant()  # the head may have left: those behind it may fit now
            raise

    def _grant(self) -> None:
        while self._queue:
            count, granted = self._queue[0]
            if granted.done():
                self._queue.popleft()
                continue
            if count > self.available:
                return
            self._queue.popleft()
            self.available -= count
            granted.set_result(PermitLease(self, count))

    @property
    def waiting(self) -> int:
        return sum(1 for _, granted in self._queue if not granted.done())


async def acquire(permits: Permits, count: int) -> PermitLease:
    """The engine's way in: in turn when the caller waits for permits, else now or 429."""
    if waiting_for_permits.get():
        return await permits.acquire_waiting(count)
    return permits.acquire(count)


class PermitLease:
    """Returned by `acquire`; releasing twice is harmless, so `finally` blocks stay simple."""

    def __init__(self, permits: Permits, count: int) -> None:
        self._permits = permits
        self._count = count

    def release(self) -> None:
        if self._count:
            self._permits.available += self._count
            self._permits._grant()
        self._count = 0


__all__ = ["Permits", "PermitLease", "acquire", "waiting_for_permits"]
