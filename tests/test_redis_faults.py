"""RedisBroker when Redis goes away: killed connections, a server restarted under it, and
the reconnection helpers the engine's loops use.

Each test gets its own redis-server (append-only, fsync always), so it may kill it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from spinach import Engine
from spinach.brokers.redis import RedisBroker
from spinach.job import Job
from spinach.testing import FakeClock
from tests.helpers import WAIT_TIMEOUT, Subscriber, wait_until
from tests.support.redis_fixtures import require_redis_server
from tests.support.redis_server import RedisServer

START = 1_700_000_000.0


def ids(jobs: list[Job]) -> list[str]:
    return [job.id for job in jobs]


def job(task: str = "task", queue: str = "q") -> Job:
    return Job(task, queue, START, 0)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer(executable=require_redis_server(), appendonly=True) as server:
        yield server


@pytest.fixture
def make(server: RedisServer) -> Iterator[Callable[..., RedisBroker]]:
    """Brokers of namespace ``ns`` on the test's server, with quick reconnections."""
    brokers: list[RedisBroker] = []
    clock = FakeClock(start=START)

    def make_broker(**kwargs: Any) -> RedisBroker:
        kwargs = {"reconnect_base_delay": 0.02, "reconnect_max_delay": 0.2, **kwargs}
        broker = RedisBroker(server.url, clock=clock, **kwargs)
        broker.set_namespace("ns")
        brokers.append(broker)
        return broker

    yield make_broker
    for broker in brokers:
        broker.stop()


def admin_call(server: RedisServer, method: str, *args: Any, **kwargs: Any) -> Any:
    """One command from a fresh client, so it never rides a connection the test broke."""
    with server.client() as client:
        return getattr(client, method)(*args, **kwargs)


def subscribers(server: RedisServer, channel: str) -> int:
    return dict(admin_call(server, "pubsub_numsub", channel)).get(channel.encode(), 0)


def pubsub_clients(server: RedisServer) -> list[str]:
    """Ids of the connections subscribed to a channel (the subscriber's)."""
    return [client["id"] for client in admin_call(server, "client_list", _type="pubsub")]


# -- killed connections ----------------------------------------------------------------


def test_killed_connections_are_reopened_by_the_next_call(make, server) -> None:
    broker = make()
    jobs = [job(), job()]

    steps = [
        lambda: broker.enqueue_jobs(jobs),
        lambda: broker.get_jobs_from_queue("q", 1),
        lambda: broker.remove_job_from_running(jobs[0]),
        lambda: broker.queue_lengths(),
    ]
    results = []
    for number, step in enumerate(steps):
        killed = admin_call(server, "client_kill_filter", _type="normal")
        assert killed >= (1 if number else 0)  # the broker's connection, once it has one
        results.append(step())

    assert ids(results[1]) == [jobs[0].id]
    assert results[3] == {"q": 1}
    assert broker.running_jobs() == {}


def test_killed_connections_without_redis_py_retries(make, server) -> None:
    broker = make(command_retries=0)
    broker.enqueue_jobs([queued := job()])
    assert admin_call(server, "client_kill_filter", _type="normal") >= 1

    assert ids(broker.get_jobs_from_queue("q", 10)) == [queued.id]


def test_the_subscriber_reconnects_after_its_connection_is_killed(make, server) -> None:
    listening, sender = make(), make()
    with Subscriber(listening):
        assert wait_until(lambda: subscribers(server, listening.channel) == 1)
        [killed] = pubsub_clients(server)
        assert admin_call(server, "client_kill_filter", _type="pubsub") == 1
        # CLIENT KILL may close the connection a moment later: wait for the new one
        assert wait_until(lambda: [c for c in pubsub_clients(server) if c != killed] != [])
        received = listening.notifications_received

        sender.enqueue_jobs([job()])

        assert wait_until(lambda: listening.notifications_received > received)


# -- a server restarted under the broker ---------------------------------------------------


def test_the_broker_carries_on_after_a_restart(make, server) -> None:
    broker = make(command_retries=1)
    jobs = [job(), job(), job()]
    broker.enqueue_jobs(jobs)
    [running] = broker.get_jobs_from_queue("q", 1)

    server.kill()  # SIGKILL: only the append-only file remains
    with pytest.raises(broker.connection_errors):
        broker.queue_lengths()
    with pytest.raises(broker.connection_errors):
        broker.get_jobs_from_queue("q", 1)
    server.restart()

    assert broker.queue_lengths() == {"q": 2}
    assert ids(broker.running_jobs()[broker.worker_id]) == [running.id]
    assert ids(broker.get_jobs_from_queue("q", 10)) == ids(jobs[1:])
    for each in jobs:
        broker.remove_job_from_running(each)
    assert broker.running_jobs() == {}


def test_start_fails_while_the_server_is_down(make, server) -> None:
    broker = make(command_retries=0)
    server.stop()

    with pytest.raises(broker.connection_errors):
        broker.start()

    server.restart()
    broker.start()


def test_the_subscriber_reconnects_after_a_restart(make, server, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="spinach.brokers.redis")
    listening, sender = make(), make()
    with Subscriber(listening):
        assert wait_until(lambda: subscribers(server, listening.channel) == 1)
        sender.enqueue_jobs([job()])
        assert wait_until(lambda: listening.notifications_received == 1)

        server.kill()
        assert wait_until(lambda: _logged(caplog, "cannot reach"))  # the outage is noticed
        server.restart()
        assert wait_until(lambda: subscribers(server, listening.channel) == 1)
        sender.enqueue_jobs([job()])
        assert wait_until(lambda: listening.notifications_received == 2)

    assert len(_logged(caplog, "cannot reach")) == 1  # once per outage, not per retry
    assert len(_logged(caplog, "reaches the broker again")) == 1


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "spinach.outage"
        and record.levelno == logging.WARNING
        and text in record.getMessage()
    ]


def lose_the_first_fetch_reply(broker: RedisBroker) -> threading.Event:
    """Make the broker's first fetch run in Redis and then lose its reply; set once lost."""
    lost = threading.Event()
    settle = broker._settle_fetch

    def settle_or_lose(*args: Any) -> list[Job]:
        if lost.is_set():
            return settle(*args)
        lost.set()
        raise redis.ConnectionError("the reply was lost")

    broker._settle_fetch = settle_or_lose
    return lost


def test_a_fetch_whose_reply_was_lost_is_delivered_by_unsettled_jobs(make) -> None:
    broker = make()
    broker.enqueue_jobs([queued := job()])
    assert broker.unsettled_jobs() == []  # no fetch lost: nothing, and nothing fetched
    lose_the_first_fetch_reply(broker)

    with pytest.raises(redis.ConnectionError):
        broker.get_jobs_from_queue("q", 5)

    assert ids(broker.unsettled_jobs()) == [queued.id]
    assert broker.unsettled_jobs() == []
    assert broker.get_jobs_from_queue("q", 5) == []


def test_a_stopping_worker_gives_back_the_jobs_of_a_lost_fetch(make, server) -> None:
    broker = make()
    engine = Engine(broker, namespace="ns")
    engine.task(name="task", queue="q")(lambda: None)
    engine.schedule("task")
    lost = lose_the_first_fetch_reply(broker)
    fetch = broker.get_jobs_from_queue
    broker.get_jobs_from_queue = lambda *args: [] if lost.is_set() else fetch(*args)

    engine.start_workers(number=1, queue="q", block=False)
    assert lost.wait(WAIT_TIMEOUT)
    engine.stop_workers()

    checker = make()
    assert checker.running_jobs() == {}
    assert checker.queue_lengths() == {"q": 1}
