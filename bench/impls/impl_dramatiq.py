"""Dramatiq with its Redis broker; ``dramatiq impl_dramatiq --processes P --threads T``."""

from __future__ import annotations

import time

import _jobs
import dramatiq
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=_jobs.redis_url(), namespace="bench")
dramatiq.set_broker(broker)


@dramatiq.actor(max_retries=0)
def noop() -> None:
    """Count one job done."""
    _jobs.count()


@dramatiq.actor(max_retries=0)
def stamp(sent: float) -> None:
    """Record the start time."""
    _jobs.stamp(sent)


def enqueue_one() -> None:
    """Enqueue one no-op job."""
    noop.send()


def enqueue_batch(count: int) -> None:
    """Enqueue ``count`` no-op jobs with ``group(...).run()`` (one enqueue each)."""
    dramatiq.group(noop.message() for _ in range(count)).run()


def send_stamp(sent: float) -> None:
    """Enqueue a latency job now."""
    stamp.send(sent)


def schedule_stamp(due: float) -> None:
    """Schedule a latency job at the Unix time ``due`` (``delay`` in ms from now)."""
    stamp.send_with_options(args=(due,), delay=max(0, round((due - time.time()) * 1000)))
