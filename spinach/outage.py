"""Riding out a broker outage: capped exponential backoff, logged once per outage."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

logger = logging.getLogger("spinach.outage")


class Outage:
    """Tracks the failures of one loop talking to the broker (one per thread).

    ``failed(exc)`` returns how long to wait before the next try, doubling from
    ``base_delay`` up to ``max_delay`` with full jitter; the first failure of an outage is
    logged as a warning, the next ones only at debug level. ``succeeded()`` ends the outage,
    logging how long it lasted.
    """

    def __init__(
        self,
        name: str,
        *,
        base_delay: float = 0.05,  #: first wait: lower resumes sooner, higher spares Redis
        max_delay: float = 5.0,  #: cap: bounds the delay between Redis's return and ours
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ):
        self.name = name
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._clock = clock
        self._rand = rand
        self.failures = 0
        self._started: float | None = None

    @property
    def ongoing(self) -> bool:
        return self.failures > 0

    def failed(self, exc: BaseException) -> float:
        """Record a failure; returns the seconds to wait before trying again."""
        if self.failures == 0:
            self._started = self._clock()
            logger.warning(
                "%s cannot reach the broker (%s: %s); retrying with backoff",
                self.name, type(exc).__name__, exc, exc_info=not _is_connection_error(exc),
            )  # fmt: skip
        else:
            logger.debug("%s still failing: %s", self.name, exc)
        self.failures += 1
        ceiling = min(self.max_delay, self.base_delay * 2 ** min(self.failures - 1, 32))
        return ceiling * (0.5 + self._rand() / 2)

    def succeeded(self) -> None:
        """Record a success, ending the outage if there was one."""
        if self.failures:
            lasted = self._clock() - self._started if self._started is not None else 0.0
            logger.warning(
                "%s reaches the broker again after %d failed attempt(s) over %.1f s",
                self.name, self.failures, lasted,
            )  # fmt: skip
            self.failures = 0
            self._started = None


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, (ConnectionError, TimeoutError, OSError)) or type(exc).__name__ in {
        "ConnectionError",
        "TimeoutError",
        "BusyLoadingError",
    }
