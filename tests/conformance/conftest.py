"""Fixtures of the broker conformance suite: every test runs against every broker.

A test uses ``broker`` (one worker process), ``peer`` (another worker process of the same
namespace and storage) and ``other_namespace`` (same storage, another namespace), and moves
time with ``clock``. Tests only use the public ``Broker`` API plus ``push_raw``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from spinach.brokers.base import Broker
from spinach.brokers.memory import MemoryBroker
from spinach.job import Job
from spinach.task import Task
from spinach.testing import FakeClock

NAMESPACE = "conformance"
OTHER_NAMESPACE = "conformance-other"
START = 1_700_000_000.0  #: the fake clock's start, a round recent timestamp


def _redis_factory(request: pytest.FixtureRequest) -> Callable[..., Broker]:
    """The factory of the Redis flavour this test runs on: one server or a cluster."""
    kind = request.node.callspec.params.get("broker", "redis")
    name = "redis_cluster_broker_factory" if kind == "redis-cluster" else "redis_broker_factory"
    return request.getfixturevalue(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=START)


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def broker(request: pytest.FixtureRequest, clock: FakeClock) -> Broker:
    if request.param == "memory":
        memory = MemoryBroker(clock=clock)
        memory.set_namespace(NAMESPACE)
        return memory
    return _redis_factory(request)(clock=clock, namespace=NAMESPACE)


@pytest.fixture
def peer(request: pytest.FixtureRequest, broker: Broker, clock: FakeClock) -> Broker:
    """Another worker process on the storage and namespace of ``broker``."""
    if isinstance(broker, MemoryBroker):
        return broker.peer()
    return _redis_factory(request)(clock=clock, namespace=NAMESPACE)


@pytest.fixture
def other_namespace(request: pytest.FixtureRequest, broker: Broker, clock: FakeClock) -> Broker:
    """A broker on the storage of ``broker`` but bound to another namespace."""
    if isinstance(broker, MemoryBroker):
        other = broker.peer()
        other.set_namespace(OTHER_NAMESPACE)
        return other
    return _redis_factory(request)(clock=clock, namespace=OTHER_NAMESPACE)


@pytest.fixture
def make_job(clock: FakeClock) -> Callable[..., Job]:
    """Build a job due now (or ``delay`` seconds from now) of task ``task`` in queue ``q``."""

    def make(
        task: str = "task", queue: str = "q", delay: float = 0.0, max_retries: int = 0, **kw: Any
    ) -> Job:
        return Job(task, queue, clock() + delay, max_retries, **kw)

    return make


def _noop() -> None:
    """The function of every task of the suite: brokers never call it."""


@pytest.fixture
def make_task() -> Callable[..., Task]:
    """Build a task; ``every`` is its periodicity in seconds."""

    def make(
        name: str = "task",
        queue: str = "q",
        max_retries: int = 0,
        every: float | None = None,
        max_concurrency: int | None = None,
    ) -> Task:
        periodicity = timedelta(seconds=every) if every is not None else None
        return Task(_noop, name, queue, max_retries, periodicity, max_concurrency)

    return make


@pytest.fixture
def start(clock: FakeClock) -> float:
    """The time at which the test starts."""
    return clock()
