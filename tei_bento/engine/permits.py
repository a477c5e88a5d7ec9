"""Concurrency permits: one per input, taken all at once or not at all.

TEI answers 429 the moment permits run out instead of queueing the request, which is
what lets a load balancer move traffic elsewhere. Everything runs on the event loop,
so a plain counter is enough.
"""

from __future__ import annotations

from tei_bento.errors import OverloadedError


class Permits:
    def __init__(self, total: int) -> None:
        self.total = total
        self.available = total

    def acquire(self, count: int) -> "PermitLease":
        if count > self.available:
            raise OverloadedError()
        self.available -= count
        return PermitLease(self, count)


class PermitLease:
    """Returned by `acquire`; releasing twice is harmless, so `finally` blocks stay simple."""

    def __init__(self, permits: Permits, count: int) -> None:
        self._permits = permits
        self._count = count

    def release(self) -> None:
        self._permits.available += self._count
        self._count = 0

