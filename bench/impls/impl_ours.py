"""Ours, native API: ``Engine`` on a ``RedisBroker``; ``spinach worker impl_ours:spin``."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import _jobs

from spinach import Batch, Engine, RedisBroker

#: The broker's Redis: the harness's server, or the cluster of workload 10 (the jobs still
#: count themselves on the harness's server, so the cluster's figures are the broker's own).
BROKER_URL = os.environ.get("BENCH_BROKER_URL") or _jobs.redis_url()

spin = Engine(RedisBroker(BROKER_URL), namespace="bench")


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
    """Enqueue ``count`` no-op jobs in one ``Batch`` (one round trip)."""
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
