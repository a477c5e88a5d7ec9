"""HeapTrimmer returns freed heap to the OS at most every min_interval_s."""

from __future__ import annotations

import ctypes

from tei_bento.engine.memory import HeapTrimmer


def test_trims_then_waits_for_the_interval():
    trimmer = HeapTrimmer(min_interval_s=3600)
    calls = []
    trimmer._trim = lambda pad: calls.append(pad) or 1
    assert trimmer.maybe_trim() is True
    assert trimmer.maybe_trim() is False
    assert calls == [0]


def test_real_malloc_trim_is_found_on_glibc():
    trimmer = HeapTrimmer(min_interval_s=0)
    blocks = [ctypes.create_string_buffer(1 << 16) for _ in range(200)]
    del blocks
    assert trimmer.maybe_trim() is True


def test_the_first_trim_does_not_wait_on_a_machine_booted_seconds_ago(monkeypatch):
    """The monotonic clock counts from boot: a fresh CI machine reads a few seconds."""
    monkeypatch.setattr("tei_bento.engine.memory.time.monotonic", lambda: 5.0)
    trimmer = HeapTrimmer(min_interval_s=3600)
    trimmer._trim = lambda pad: 1
    assert trimmer.maybe_trim() is True
    assert trimmer.maybe_trim() is False
