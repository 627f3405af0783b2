"""Ours, Celery facade: ``spinach_compat.Celery``; ``spinach worker impl_facade:app.engine``
(``impl_facade:events_engine``: the same worker sending Celery's events, as ``-E``, to the
bench's listener; ``events_unheard_engine``: with nobody listening)."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timezone
from typing import Any

import _jobs

from spinach_compat import Celery, group

app = Celery("bench", broker=_jobs.redis_url(), backend=_jobs.redis_url())


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
    """Enqueue ``count`` no-op jobs with one ``group``."""
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


#: Seconds an events worker waits for the bench's events listener to subscribe.
LISTENER_TIMEOUT = 30.0


def __getattr__(name: str) -> Any:
    """``events_engine``: the engine, once this worker process sends Celery's task and
    worker events as ``spinach-compat worker -E`` does, the bench's listener (a receiver,
    as Flower) subscribed first; ``events_unheard_engine``: the same, nobody listening."""
    if name not in ("events_engine", "events_unheard_engine"):
        raise AttributeError(f"module 'impl_facade' has no attribute {name!r}")
    from spinach_compat.events.worker import WorkerEvents

    if name == "events_engine":
        _wait_for_listener()
    WorkerEvents(app, f"bench@{socket.gethostname()}").start()
    return app.engine


def _wait_for_listener() -> None:
    """Wait until a pattern subscriber (``events_listener.py``) is subscribed to Redis."""
    client, deadline = _jobs.client(), time.monotonic() + LISTENER_TIMEOUT
    while not client.pubsub_numpat():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no events listener subscribed in {LISTENER_TIMEOUT} s")
        time.sleep(0.01)
