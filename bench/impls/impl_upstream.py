"""Upstream Spinach 0.0.25 (PyPI ``spinach``), threaded workers; it has no worker command."""

from __future__ import annotations

from datetime import datetime, timezone

import _jobs
from redis import StrictRedis

from spinach import Batch, Engine
from spinach.brokers.redis import RedisBroker, recommended_socket_opts

spin = Engine(
    RedisBroker(StrictRedis.from_url(_jobs.redis_url(), **recommended_socket_opts)),
    namespace="bench",
)


@spin.task(name="noop")
def noop() -> None:
    """Count one job done."""
    _jobs.count()


@spin.task(name="stamp")
def stamp(sent: float) -> None:
    """Record the start time."""
    _jobs.stamp(sent)


def enqueue_one() -> None:
    """Enqueue one no-op job."""
    spin.schedule(noop)


def enqueue_batch(count: int) -> None:
    """Enqueue ``count`` no-op jobs in one ``Batch``."""
    batch = Batch()
    for _ in range(count):
        batch.schedule(noop)
    spin.schedule_batch(batch)


def send_stamp(sent: float) -> None:
    """Enqueue a latency job now."""
    spin.schedule(stamp, sent)


def schedule_stamp(due: float) -> None:
    """Schedule a latency job at the Unix time ``due``."""
    spin.schedule_at(stamp, datetime.fromtimestamp(due, timezone.utc), due)


def run_worker(threads: int) -> None:
    """Run ``threads`` worker threads until SIGTERM or SIGINT."""
    spin.start_workers(number=threads, block=True)
