"""Riding out lost connections to a broker: a capped backoff and once-per-outage logging.

Broker methods raise their connection errors to the caller; the loops calling them (the
engine's threads, ``RedisBroker.run_subscriber``) own the retrying. A loop keeps one
``Backoff`` and one ``OutageLog``::

    backoff, outage = Backoff(), OutageLog(logger, "arbiter")
    while not stopping.is_set():
        try:
            do_one_round()
        except broker.connection_errors as exc:
            outage.failed(exc)
            stopping.wait(backoff.next_delay())
        else:
            outage.recovered()
            backoff.reset()

This module imports nothing from a broker client, so in-memory users never load redis-py.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Default first delay of a ``Backoff``, in seconds. Lower reconnects sooner after a blip,
#: higher spares a server that is restarting.
DEFAULT_BASE_DELAY = 0.1

#: Default cap of a ``Backoff``, in seconds. Lower bounds how long a loop keeps waiting once
#: the server is back, higher bounds how often a long outage is probed.
DEFAULT_MAX_DELAY = 10.0


class Backoff:
    """Capped exponential delays with equal jitter: attempt ``n`` (from 0) waits between
    half and all of ``min(max_delay, base_delay * 2**n)``.

    The jitter spreads the reconnections of many workers that lost the server together.
    Not thread-safe: keep one per loop.
    """

    def __init__(
        self,
        base_delay: float = DEFAULT_BASE_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        rand: Callable[[], float] = random.random,
    ):
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError(f"need 0 < base_delay <= max_delay, not {base_delay}, {max_delay}")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._rand = rand
        self.attempts = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; each call counts one failed attempt."""
        exponent = min(self.attempts, 64)  # past this, every sane cap is reached anyway
        ceiling = min(self.max_delay, self.base_delay * 2**exponent)
        self.attempts += 1
        return ceiling / 2 + self._rand() * ceiling / 2

    def reset(self) -> None:
        """Start again from ``base_delay`` (after a success)."""
        self.attempts = 0


class OutageLog:
    """Logs an outage once when it starts (warning) and once when it ends (info).

    The failures in between are logged at debug level only, so a long outage does not
    flood the logs. Not thread-safe: keep one per loop.
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.logger = logger
        self.what = what
        self._clock = clock
        self.failures = 0
        self._started_at = 0.0

    @property
    def ongoing(self) -> bool:
        """Whether the last attempt failed."""
        return self.failures > 0

    def failed(self, exc: BaseException) -> bool:
        """Record a failed attempt; True when it starts an outage (and was logged)."""
        self.failures += 1
        if self.failures > 1:
            self.logger.debug("%s still cannot reach the broker: %s", self.what, exc)
            return False
        self._started_at = self._clock()
        self.logger.warning(
            "%s lost the broker (%s: %s); retrying with backoff",
            self.what, type(exc).__name__, exc,
        )  # fmt: skip
        return True

    def recovered(self) -> bool:
        """Record a successful attempt; True when it ends an outage (and was logged)."""
        if not self.failures:
            return False
        self.logger.info(
            "%s reaches the broker again after %d failed attempt(s) over %.1f s",
            self.what, self.failures, self._clock() - self._started_at,
        )  # fmt: skip
        self.failures = 0
        return True


def call_with_reconnect(
    func: Callable[[], T],
    errors: tuple[type[BaseException], ...],
    stopping: threading.Event,
    backoff: Backoff | None = None,
    outage: OutageLog | None = None,
) -> T | None:
    """Call ``func`` until it does not raise one of ``errors``; None once ``stopping`` is set.

    Other exceptions propagate at once. Meant for calls that must happen (deregistering,
    giving back jobs) and are idempotent, as every broker operation is.
    """
    backoff = backoff or Backoff()
    outage = outage or OutageLog(logging.getLogger(__name__), getattr(func, "__name__", "call"))
    while not stopping.is_set():
        try:
            result = func()
        except errors as exc:
            outage.failed(exc)
            stopping.wait(backoff.next_delay())
            continue
        outage.recovered()
        backoff.reset()
        return result
    return None
