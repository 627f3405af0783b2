"""Pytest fixtures for the Redis tests: one throwaway server per session, flushed per test.

Without redis-server the Redis tests are skipped, saying why; with the ``CI`` environment
variable set they fail instead, so a CI machine cannot silently skip them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spinach.brokers.base import Clock
from spinach.brokers.redis import RedisBroker

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
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of db 0 of the session's server, emptied (every db) for this test."""
    if not redis_server.running:  # a test took it down: bring it back for the next ones
        redis_server.restart()
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


RedisBrokerFactory = Callable[..., RedisBroker]


@pytest.fixture
def redis_broker_factory(redis_url: str) -> Iterator[RedisBrokerFactory]:
    """Make brokers on the test's server: each call is another worker process.

    ``redis_broker_factory(clock=time.time, namespace="conformance", worker_id=None,
    **tunables)``; every broker made is stopped at teardown.
    """
    brokers: list[RedisBroker] = []

    def make(
        clock: Clock = time.time,
        namespace: str = "conformance",
        worker_id: str | None = None,
        **tunables: Any,
    ) -> RedisBroker:
        broker = RedisBroker(redis_url, clock=clock, worker_id=worker_id, **tunables)
        broker.set_namespace(namespace)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.stop()
