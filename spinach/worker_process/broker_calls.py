"""Broker calls a worker process must not lose, and the count of jobs not yet reported."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..outage import Outage

logger = logging.getLogger("spinach.engine")  # the name these records always had


class BrokerCalls:
    """Calls the broker until it answers, waiting with backoff through an outage.

    Once ``stopping`` is set, a call gives up after ``shutdown_timeout`` seconds: what it
    failed to report is then recovered by other workers as a dead worker's job.
    """

    def __init__(
        self,
        stopping: threading.Event,
        shutdown_timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._stopping = stopping
        self._shutdown_timeout = shutdown_timeout
        self._clock = clock
        self._sleep = sleep

    def call(self, what: str, outage: Outage, call: Callable[..., Any], *args: Any) -> bool:
        """Run ``call(*args)`` until it succeeds (True) or the stop's deadline passed."""
        deadline = None
        while True:
            try:
                call(*args)
                outage.succeeded()
                return True
            except Exception as exc:
                delay = outage.failed(exc)
            if self._stopping.is_set():
                deadline = deadline or self._clock() + self._shutdown_timeout
                if self._clock() >= deadline:
                    logger.error("Gave up %s: the broker stayed unreachable", what)
                    return False
            self._sleep(delay)


class Unreported:
    """How many jobs were handed to the worker threads and not yet reported to the broker
    (nor given back); ``on_reported`` is called after each report (the worker wakes the
    arbiter with it when the arbiter waits for every job to be reported)."""

    def __init__(self, on_reported: Callable[[], None]):
        self._lock = threading.Lock()
        self._count = 0
        self._on_reported = on_reported

    def dispatched(self, count: int = 1) -> None:
        with self._lock:
            self._count += count

    def reported(self, count: int) -> None:
        with self._lock:
            self._count -= count
        self._on_reported()

    @property
    def none(self) -> bool:
        """Whether every job handed over was reported."""
        with self._lock:
            return self._count == 0
