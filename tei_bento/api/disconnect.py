"""Drop a request from the queue the moment its client goes away.

uvicorn does not cancel a handler when the client disconnects, so a client that gave up
would keep its permits and its place in the queue until the model answered it. Watching
the ASGI receive channel for `http.disconnect` lets the engine cancel its queued inputs
(the batcher skips cancelled ones) and release the permits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client closed the connection before the answer was ready."""


async def _wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    return await run_unless(work, _wait_for_disconnect(request), ClientDisconnected)


async def run_unless(work: Awaitable[T], stop: Awaitable[None], stopped: Callable[[], Exception]) -> T:
    """`work`'s result, unless `stop` finishes first: then `work` is cancelled (its queued
    inputs dropped, its permits released) and `stopped()` is raised."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(stop)
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        if not watcher.done():
            watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise stopped()
