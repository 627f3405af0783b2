"""Huey with Redis storage, thread workers; ``huey_consumer impl_huey.huey -k thread``."""

from __future__ import annotations

import time

import _jobs
from huey import RedisHuey

huey = RedisHuey("bench", url=_jobs.redis_url())


@huey.task()
def noop() -> None:
    """Count one job done."""
    _jobs.count()


@huey.task()
def stamp(sent: float) -> None:
    """Record the start time."""
    _jobs.stamp(sent)


def enqueue_one() -> None:
    """Enqueue one no-op job."""
    noop()


def enqueue_batch(count: int) -> None:
    """Enqueue ``count`` no-op jobs with ``map`` (one enqueue each: Huey has no batch)."""
    noop.map([()] * count)


def send_stamp(sent: float) -> None:
    """Enqueue a latency job now."""
    stamp(sent)


def schedule_stamp(due: float) -> None:
    """Schedule a latency job at the Unix time ``due`` (``delay`` in seconds from now)."""
    stamp.schedule(args=(due,), delay=max(0.0, due - time.time()))
