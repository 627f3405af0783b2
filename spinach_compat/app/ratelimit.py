"""Celery's ``rate_limit``: per worker process, one limiter per task name.

Celery parses ``"10/s"``, ``"100/m"``, ``"1000/h"`` (a plain number is per second, 0 or
None is no limit) and holds the tasks over the limit back in the worker with a token bucket
of capacity 1, without blocking other tasks. The facade does the same with a virtual
scheduling clock (GCRA, equivalent to a token bucket of capacity 1): a job within the limit
runs at once; a job over it reserves the next free slot and is deferred to it
(``spinach.exc.DeferException``: no thread is blocked and no retry is counted). The slot is
kept in the job's meta, so the job runs when it comes back, and a burst runs in order,
``1/rate`` seconds apart.

With the setting ``spinach_global_rate_limits = True`` the limit holds for the whole
namespace instead (every worker process together): each task's ``rate_limit`` becomes its
native task's (``spinach.rate_limit``, checked by the broker as it hands jobs out) and the
per-worker limiter stands aside.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

#: Seconds per unit of a rate's modifier.
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(limit: Any) -> float:
    """Tasks per second of a Celery rate limit; 0.0 means no limit."""
    if not limit:
        return 0.0
    if isinstance(limit, str):
        ops, _, modifier = limit.partition("/")
        unit = _UNITS.get((modifier or "s")[0])
        if unit is None:
            raise ValueError(f"invalid rate limit {limit!r}: use N/s, N/m or N/h")
        return float(ops) / unit or 0.0
    return float(limit)


class RateLimiter:
    """The slots of one task name in this process: at most ``rate`` starts per second."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.time):
        self.interval = 1.0 / rate
        self.clock = clock
        self._next_free = 0.0  # when the next job within the limit may start
        self._lock = threading.Lock()

    def acquire(self) -> float | None:
        """None when a job may start now; else the timestamp of the slot it reserved."""
        with self._lock:
            now = self.clock()
            if now >= self._next_free:
                self._next_free = now + self.interval
                return None
            slot = self._next_free
            self._next_free = slot + self.interval
            return slot


class RateLimits:
    """The limiters of a worker process, by task name, created at first use."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._limiters: dict[str, tuple[float, RateLimiter]] = {}
        self._lock = threading.Lock()

    def limiter(self, name: str, limit: Any) -> RateLimiter | None:
        """The limiter of ``name`` for ``limit`` (a new one when the limit changed)."""
        rate = parse_rate(limit)
        if rate <= 0:
            return None
        with self._lock:
            known = self._limiters.get(name)
            if known is None or known[0] != rate:
                known = self._limiters[name] = (rate, RateLimiter(rate, self.clock))
            return known[1]


def native_rate(limit: Any) -> str | None:
    """A Celery ``rate_limit`` as a native one, ``"<count>/<s|m|h>"``; None for no limit."""
    rate = parse_rate(limit)
    if rate <= 0:
        return None
    if isinstance(limit, str) and "/" in limit:
        count, _, modifier = limit.partition("/")
        return f"{count.strip()}/{modifier.strip()[0]}"
    return f"{rate:.9f}/s"


def apply_global_rate_limits(app: Any, names: Any = None) -> None:
    """Give the native tasks of ``names`` (all when None) their Celery task's rate limit,
    when ``spinach_global_rate_limits`` is set; a task whose limit is invalid raises."""
    if not app.conf.spinach_global_rate_limits:
        return
    for name in list(app._tasks) if names is None else names:
        native = app._native.get(name)
        native.rate_limit = native_rate(app._tasks[name].rate_limit)
        native.rate  # noqa: B018 - parses it: a bad limit fails here, naming the task
