"""Give freed heap memory back to the operating system when the server goes idle.

Tokenizer threads, the model thread and the event loop each get their own glibc malloc
arena; after a burst of large batches those arenas keep their freed pages, so resident
memory climbs to the burst's high-water mark and stays there. `malloc_trim(0)` returns
them. It runs on the model thread when the queue has just emptied, at most every few
seconds, so it never delays a forward pass. Elsewhere than glibc it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time

log = logging.getLogger(__name__)


class HeapTrimmer:
    def __init__(self, min_interval_s: float = 5.0) -> None:
        self.min_interval_s = min_interval_s
        self._last: float | None = None  # the first trim never waits, however long the machine is up
        self._trim = None
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            self._trim = getattr(libc, "malloc_trim", None)
        except OSError:  # pragma: no cover - not glibc
            self._trim = None

    def maybe_trim(self) -> bool:
        now = time.monotonic()
        if self._trim is None:
            return False
        if self._last is not None and now - self._last < self.min_interval_s:
            return False
        self._last = now
        self._trim(0)
        return True
