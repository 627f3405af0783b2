"""Fixtures of the broker conformance suite: every test runs against every broker.

A test uses ``broker`` (one worker process), ``peer`` (another worker process of the same
namespace and storage) and ``other_namespace`` (same storage, another namespace), and moves
time with ``clock``. Tests only use the public ``Broker`` API plus ``push_raw``.
"""

from __future__ import annotations

import functools
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
#: The partition key of the jobs of a test marked ``one_partition``: its CRC-32 is a multiple
#: of 12, so it routes to partition 0 of 3 or 4, where ``push_raw`` puts raw payloads.
ONE_PARTITION_KEY = "p6"


#: The partition count of each Redis flavour (``redis_partitions``): today's one-slot layout,
#: and a namespace spread over partitions, on one server and on a cluster.
PARTITIONS = {"redis": 1, "redis-cluster": 1, "redis-p4": 4, "redis-cluster-p3": 3}


def _redis_factory(request: pytest.FixtureRequest) -> Callable[..., Broker]:
    """The factory of the Redis flavour this test runs on: one server or a cluster, with
    its partition count."""
    kind = request.node.callspec.params.get("broker", "redis")
    cluster = kind.startswith("redis-cluster")
    name = "redis_cluster_broker_factory" if cluster else "redis_broker_factory"
    factory = request.getfixturevalue(name)
    return functools.partial(factory, partitions=PARTITIONS[kind])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=START)


@pytest.fixture(params=["memory", *PARTITIONS])
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "one_partition: the test asserts an order between jobs, which a partitioned "
        "namespace keeps within a partition only: its jobs share one partition key",
    )


@pytest.fixture
def make_job(request: pytest.FixtureRequest, clock: FakeClock) -> Callable[..., Job]:
    """Build a job due now (or ``delay`` seconds from now) of task ``task`` in queue ``q``;
    in a test marked ``one_partition``, with the partition key the test's jobs share."""
    shared_key = ONE_PARTITION_KEY if request.node.get_closest_marker("one_partition") else None

    def make(
        task: str = "task",
        queue: str = "q",
        delay: float = 0.0,
        max_retries: int = 0,
        partition_key: str | None = shared_key,
        **kw: Any,
    ) -> Job:
        job = Job(task, queue, clock() + delay, max_retries, **kw)
        job.partition_key = partition_key
        return job

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
