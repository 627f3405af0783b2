"""Pytest fixtures for the Redis tests: one throwaway server per session, flushed per test.

Without redis-server the Redis tests are skipped, saying why; with the ``CI`` environment
variable set they fail instead, so a CI machine cannot silently skip them.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spinach.brokers.base import Clock
from spinach.brokers.redis import RedisBroker

from .redis_cluster import RedisClusterServers, find_redis_cli
from .redis_server import RedisServer, RedisServerNotFound, find_redis_server


def require_redis_server() -> str:
    """The redis-server executable; skips the test without one (fails it under CI)."""
    try:
        return find_redis_server()
    except RedisServerNotFound as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server for the whole session (127.0.0.1, a free port, no persistence)."""
    server = RedisServer(executable=require_redis_server())
    server.start()
    yield server
    release_dropped_clients()
    server.close()


def release_dropped_clients() -> None:
    """Finalize the clients the tests dropped, while their server still runs.

    Real Celery's ``AsyncResult.__del__`` unsubscribes from the result's channel when the
    result is still waited on (a ``get()`` that timed out); an app and its results in a
    reference cycle are finalized by the garbage collector, maybe only at the end of the
    session, once the server is gone: the unsubscribe then retries its reconnection for
    about 20 s and raises (``PytestUnraisableExceptionWarning``). Collected here, they
    unsubscribe from a live server."""
    gc.collect()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of db 0 of the session's server, emptied (every db) for this test."""
    if not redis_server.running:  # a test took it down: bring it back for the next ones
        redis_server.restart()
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


RedisBrokerFactory = Callable[..., RedisBroker]


@contextlib.contextmanager
def broker_factory(url: str) -> Iterator[RedisBrokerFactory]:
    """Make brokers on ``url``: each call is another worker process; all stopped after.

    ``make(clock=time.time, namespace="conformance", worker_id=None, **tunables)``.
    """
    brokers: list[RedisBroker] = []

    def make(
        clock: Clock = time.time,
        namespace: str = "conformance",
        worker_id: str | None = None,
        **tunables: Any,
    ) -> RedisBroker:
        broker = RedisBroker(url, clock=clock, worker_id=worker_id, **tunables)
        broker.set_namespace(namespace)
        brokers.append(broker)
        return broker

    try:
        yield make
    finally:
        for broker in brokers:
            broker.stop()


@pytest.fixture
def redis_broker_factory(redis_url: str) -> Iterator[RedisBrokerFactory]:
    """Brokers on the test's server (see ``broker_factory``)."""
    with broker_factory(redis_url) as make:
        yield make


# -- Redis Cluster -------------------------------------------------------------------------


def require_redis_cluster_tools() -> str:
    """The redis-server executable, once redis-cli is found too (it joins the nodes);
    skips the test without them (fails it under CI)."""
    executable = require_redis_server()
    try:
        find_redis_cli()
    except RedisServerNotFound as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    return executable


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A three-node Redis Cluster for the whole session (127.0.0.1, free ports)."""
    with RedisClusterServers(executable=require_redis_cluster_tools()) as cluster:
        yield cluster


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisClusterServers) -> str:
    """``redis+cluster://`` URL of the cluster, every node emptied for this test."""
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture
def redis_cluster_broker_factory(redis_cluster_url: str) -> Iterator[RedisBrokerFactory]:
    """``redis_broker_factory``, on the cluster: each call is another worker process."""
    with broker_factory(redis_cluster_url) as make:
        yield make
