"""Permits: fail-fast callers get all or nothing; waiting callers are served in turn."""

from __future__ import annotations

import asyncio

import pytest

from tei_bento.engine.permits import Permits, acquire, waiting_for_permits
from tei_bento.errors import OverloadedError


def test_all_or_nothing_and_release_twice_is_harmless():
    permits = Permits(3)
    lease = permits.acquire(2)
    with pytest.raises(OverloadedError):
        permits.acquire(2)
    lease.release()
    lease.release()
    assert permits.available == 3


def test_a_waiter_gets_the_released_permit_before_a_fail_fast_caller():
    """The soak's starvation: a release must go to the waiting stream, not to whoever
    asks in the same instant."""

    async def run() -> list[str]:
        permits = Permits(1)
        held = permits.acquire(1)
        order: list[str] = []

        async def stream_message(name: str) -> None:
            lease = await permits.acquire_waiting(1)
            order.append(name)
            await asyncio.sleep(0)
            lease.release()

        waiters = [asyncio.ensure_future(stream_message(f"w{i}")) for i in range(3)]
        await asyncio.sleep(0)
        held.release()
        with pytest.raises(OverloadedError):  # a caller arriving now does not jump the queue
            permits.acquire(1)
        await asyncio.gather(*waiters)
        assert permits.available == 1 and permits.waiting == 0
        permits.acquire(1).release()  # nobody waits: fail-fast callers are served again
        return order

    assert asyncio.run(run()) == ["w0", "w1", "w2"]


def test_a_cancelled_waiter_leaves_the_queue_and_those_behind_move_up():
    async def run() -> None:
        permits = Permits(2)
        held = permits.acquire(2)
        big = asyncio.ensure_future(permits.acquire_waiting(2))
        small = asyncio.ensure_future(permits.acquire_waiting(1))
        await asyncio.sleep(0)
        held.release()
        await asyncio.sleep(0)
        assert big.done() and not small.done()  # the head was served first, whole
        big.result().release()
        lease = await small
        blocked = permits.acquire(1)
        late = asyncio.ensure_future(permits.acquire_waiting(2))
        await asyncio.sleep(0)
        late.cancel()
        with pytest.raises(asyncio.CancelledError):
            await late
        assert permits.waiting == 0
        lease.release()
        blocked.release()
        assert permits.available == 2

    asyncio.run(run())


def test_more_than_exist_is_refused_at_once_even_when_waiting():
    async def run() -> None:
        with pytest.raises(OverloadedError):
            await Permits(2).acquire_waiting(3)

    asyncio.run(run())


def test_the_context_says_which_way_the_engine_acquires():
    async def run() -> None:
        permits = Permits(1)
        held = permits.acquire(1)
        with pytest.raises(OverloadedError):
            await acquire(permits, 1)

        async def waiting() -> None:
            waiting_for_permits.set(True)
            (await acquire(permits, 1)).release()

        task = asyncio.ensure_future(waiting())
        await asyncio.sleep(0)
        assert permits.waiting == 1
        held.release()
        await task
        assert permits.available == 1

    asyncio.run(run())
