"""Celery 5 on Redis (broker and result backend); ``celery -A impl_celery worker``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import _jobs
from celery import Celery, group

app = Celery("bench", broker=_jobs.redis_url(), backend=_jobs.redis_url())
app.conf.broker_connection_retry_on_startup = True


@app.task(ignore_result=True)
def noop() -> None:
    """Count one job done."""
    _jobs.count()


@app.task(ignore_result=True)
def stamp(sent: float) -> None:
    """Record the start time."""
    _jobs.stamp(sent)


@app.task(ignore_result=True)
def cpu() -> None:
    """Workload 9: a CPU-bound job."""
    _jobs.cpu_job()


@app.task(ignore_result=True)
def io() -> None:
    """Workload 9: an I/O-bound job (10 ms asleep)."""
    _jobs.io_job()


@app.task
def echo(value: Any) -> Any:
    """Give the value back through the result backend."""
    return value


def enqueue_one() -> None:
    """Enqueue one no-op job."""
    noop.delay()


def enqueue_batch(count: int) -> None:
    """Enqueue ``count`` no-op jobs with ``group`` (one message each, one connection)."""
    group(noop.s() for _ in range(count)).apply_async()


def enqueue_kind(kind: str, count: int) -> None:
    """Enqueue ``count`` jobs of workload 9 (``cpu`` or ``io``) with one ``group``."""
    task = {"cpu": cpu, "io": io}[kind]
    group(task.s() for _ in range(count)).apply_async()


def send_stamp(sent: float) -> None:
    """Enqueue a latency job now."""
    stamp.delay(sent)


def schedule_stamp(due: float) -> None:
    """Schedule a latency job at the Unix time ``due`` (``eta``)."""
    stamp.apply_async((due,), eta=datetime.fromtimestamp(due, timezone.utc))


def roundtrip(value: int, timeout: float) -> Any:
    """``echo.delay(value).get()``."""
    return echo.delay(value).get(timeout=timeout)
