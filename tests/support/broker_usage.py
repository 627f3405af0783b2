"""Brokers put through every kind of state change, for tests that look at what is stored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from spinach.brokers.base import Broker, WorkerInfo
from spinach.job import Job
from spinach.task import Task
from spinach.testing import FakeClock

#: When the jobs of these helpers are due (tests inject a FakeClock starting there).
START = 1_700_000_000.0


def noop() -> None:
    """The function of the tasks given to brokers directly: they never call it."""


def job(task: str = "task", queue: str = "q", delay: float = 0.0, **kwargs: Any) -> Job:
    """A job of ``task`` in ``queue``, due ``delay`` seconds after ``START``."""
    return Job(task, queue, START + delay, kwargs.pop("max_retries", 0), **kwargs)


def use_everything(broker: Broker, peer: Broker, clock: FakeClock) -> None:
    """Touch every kind of key a namespace has: limits, periodic tasks, workers, queues,
    future jobs, dead letters, running jobs of two workers and their fetch caches."""
    limited = Task(noop, "limited", "q", 0, max_concurrency=1)
    tick = Task(noop, "tick", "ticks", 0, periodicity=timedelta(seconds=60))
    broker.set_concurrency_keys([limited])
    broker.register_periodic_tasks([tick])
    broker.register_worker(WorkerInfo(id=broker.worker_id))
    broker.enqueue_jobs([job("limited"), job("limited"), job(delay=100), job(), job()])
    broker.push_raw("q", "{not json")
    broker.move_future_jobs()
    broker.get_jobs_from_queue(["q", "ticks"], 3)
    peer.get_jobs_from_queue("q", 1)
    clock.advance(1)
