"""Concurrency permits: one per input, taken all at once or not at all.

TEI answers 429 the moment permits run out instead of queueing the request, which is
what lets a load balancer move traffic elsewhere. Everything runs on the event loop,
so a plain counter is enough.

Callers that would rather wait than fail (a gRPC stream's messages, as in TEI; bulk jobs)
wait on `released()`: each release wakes as many waiters, first come first served, as it
freed permits, instead of every waiter polling.
"""

from __future__ import annotations

import asyncio
from collections import deque

from tei_bento.errors import OverloadedError

WAIT_FALLBACK_S = 0.05
"""A woken waiter that is cancelled before it retries leaves its permit unclaimed; every
waiter also retries after this long, so no one waits on a wake-up that went elsewhere."""


class Permits:
    def __init__(self, total: int) -> None:
        self.total = total
        self.available = total
        self._waiters: deque[asyncio.Future[None]] = deque()

    def acquire(self, count: int) -> "PermitLease":
        if count > self.available:
            raise OverloadedError()
        self.available -= count
        return PermitLease(self, count)

    async def released(self) -> None:
        """Return once some permits were released (or after WAIT_FALLBACK_S): try again."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), WAIT_FALLBACK_S)
        except asyncio.TimeoutError:
            pass
        finally:
            if not waiter.done():
                waiter.cancel()  # skipped by _wake

    def _wake(self, count: int) -> None:
        while count > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1


class PermitLease:
    """Returned by `acquire`; releasing twice is harmless, so `finally` blocks stay simple."""

    def __init__(self, permits: Permits, count: int) -> None:
        self._permits = permits
        self._count = count

    def release(self) -> None:
        if self._count:
            self._permits.available += self._count
            self._permits._wake(self._count)
        self._count = 0

