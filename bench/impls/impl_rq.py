"""RQ: ``rq worker`` (forks a work horse per job) or ``SimpleWorker``; no threads."""

from __future__ import annotations

from datetime import datetime, timezone

import _jobs
from redis import Redis
from rq import Queue

queue = Queue("bench", connection=Redis.from_url(_jobs.redis_url()))


def enqueue_one() -> None:
    """Enqueue one no-op job."""
    queue.enqueue(_jobs.count)


def enqueue_batch(count: int) -> None:
    """Enqueue ``count`` no-op jobs with ``enqueue_many`` (one pipeline)."""
    queue.enqueue_many([Queue.prepare_data(_jobs.count) for _ in range(count)])


def send_stamp(sent: float) -> None:
    """Enqueue a latency job now."""
    queue.enqueue(_jobs.stamp, sent)


def schedule_stamp(due: float) -> None:
    """Schedule a latency job at the Unix time ``due`` (``enqueue_at``; the worker needs
    ``--with-scheduler``)."""
    queue.enqueue_at(datetime.fromtimestamp(due, timezone.utc), _jobs.stamp, due)
