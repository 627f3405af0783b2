"""Helpers for testing code that uses Spinach, without sleeping."""

from __future__ import annotations

import threading
import time


class FakeClock:
    """A clock that only moves when told to, for brokers built with ``clock=``.

    >>> clock = FakeClock()
    >>> broker = MemoryBroker(clock=clock)
    >>> clock.advance(60)  # every job due within the minute is now due
    """

    def __init__(self, start: float | None = None):
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward; returns the new time."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, timestamp: float) -> None:
        """Move the clock to ``timestamp`` (never backwards)."""
        with self._lock:
            if timestamp < self._now:
                raise ValueError("a clock does not go back")
            self._now = timestamp
