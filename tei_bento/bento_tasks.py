"""A cancelled BentoML task stops computing and frees its permits and queued inputs.

BentoML's own server answers `PUT <task>/cancel` by marking the task CANCELED in its result
store (and a 400 "not supported in local development server"), but the task's coroutine
runs on to the end: a 100,000-text `embed_batch` would hold a quarter of its model's
permits and keep the model busy for minutes after its caller gave up. The task watches its
own row in that store and, once it reads CANCELED, cancels its chunks, as a disconnected
HTTP client's request is cancelled (tei_bento/api/disconnect.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")
POLL_S = 0.25


class TaskCancelled(Exception):
    """The task's caller cancelled it."""


def _serving_task_id(request: Any) -> str | None:
    """The id BentoML gave the task this call runs as (None: a plain API call)."""
    return getattr(getattr(request, "state", None), "task_id", None)


def _result_store_file() -> str | None:
    try:
        from bentoml._internal.configuration.containers import BentoMLContainer

        return str(BentoMLContainer.result_store_file.get())
    except Exception:  # a BentoML without a result store: nothing to watch
        return None


def _status(store: str, task_id: str) -> str | None:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1.0) as connection:
        row = connection.execute("SELECT status FROM result WHERE task_id = ?", (task_id,)).fetchone()
    return row[0] if row else None


async def _until_cancelled(store: str, task_id: str) -> None:
    from _bentoml_impl.tasks.result import ResultStatus

    while True:
        await asyncio.sleep(POLL_S)
        try:
            status = await asyncio.to_thread(_status, store, task_id)
        except sqlite3.Error:  # busy or briefly locked: read again at the next poll
            continue
        if status == ResultStatus.CANCELED.value:
            return


async def unless_cancelled(request: Any, work: Awaitable[T]) -> T:
    """`work`, stopped the moment the task it runs as is cancelled; `request` is the one
    BentoML is serving (None for a direct Python call)."""
    from tei_bento.api.disconnect import run_unless

    task_id, store = _serving_task_id(request), _result_store_file()
    if task_id is None or store is None:
        return await work
    return await run_unless(work, _until_cancelled(store, task_id), TaskCancelled)
