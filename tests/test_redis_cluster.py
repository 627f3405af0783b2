"""RedisBroker on a real Redis Cluster: three redis-server nodes on loopback, joined with
``redis-cli --cluster create``, started once for this module.

The whole broker conformance suite runs again here against cluster brokers (its tests are
collected into this module, with ``broker``, ``peer`` and ``other_namespace`` made on the
cluster), then cluster specifics: routing, clients passed in, pub/sub, the hidden retries
of the cluster client, and engines of two namespaces served by two different nodes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from spinach import Engine, Tasks
from spinach.brokers.base import WorkerInfo
from spinach.brokers.redis import RedisBroker
from spinach.testing import FakeClock
from tests.helpers import SignalRecorder, Subscriber, wait_until
from tests.support.broker_usage import job, use_everything
from tests.support.redis_cluster import RedisClusterServers
from tests.support.redis_fixtures import RedisBrokerFactory, require_redis_cluster_tools

START = 1_700_000_000.0
WAIT = 30.0  #: generous bound for what another thread does; a passing test never waits it


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """The cluster of this module (overrides the session one of the Redis fixtures)."""
    with RedisClusterServers(executable=require_redis_cluster_tools()) as cluster:
        yield cluster


# -- helpers ---------------------------------------------------------------------------------


def _noop() -> None:
    """The function of the tasks given to brokers directly: they never call it."""


def keys_by_port(cluster: RedisClusterServers) -> dict[int, set[str]]:
    """The keys each node holds."""
    found = {}
    for port in cluster.ports:
        with cluster.node_client(port) as client:
            found[port] = {key.decode() for key in client.scan_iter(count=1000)}
    return found


def namespaces_on_two_nodes(cluster: RedisClusterServers) -> tuple[str, str]:
    """Two namespace names whose keys live on two different nodes."""
    first = "alpha"
    for index in range(100):
        candidate = f"beta{index}"
        if cluster.port_of_tag(candidate) != cluster.port_of_tag(first):
            return first, candidate
    raise AssertionError("every candidate namespace is on the node of the first")


@pytest.fixture
def make(redis_cluster_broker_factory: RedisBrokerFactory) -> Callable[..., RedisBroker]:
    """A broker of namespace ``ns`` (or another) on the cluster, on a fake clock."""
    clock = FakeClock(start=START)

    def make_broker(namespace: str = "ns", **kwargs: Any) -> RedisBroker:
        return redis_cluster_broker_factory(clock=clock, namespace=namespace, **kwargs)

    return make_broker


# -- clients and routing ---------------------------------------------------------------------


def test_a_cluster_url_makes_a_cluster_client(make) -> None:
    broker = make()
    assert isinstance(broker.redis, RedisCluster)
    assert broker.channel == "{ns}/notifications/0"


def test_every_key_of_a_namespace_is_on_the_node_of_its_slot(make, redis_cluster) -> None:
    broker, peer = make(), make()
    use_everything(broker, peer, FakeClock(START))  # keys built in Lua too: queues, caches

    owner = redis_cluster.port_of_tag("ns")
    found = keys_by_port(redis_cluster)
    assert len(found[owner]) >= 15
    assert {key_slot(key.encode()) for key in found[owner]} == {key_slot(b"ns")}
    assert all(not keys for port, keys in found.items() if port != owner)
    assert any(key.startswith("{ns}/fetched/") for key in found[owner])
    broker.flush()
    assert keys_by_port(redis_cluster) == {port: set() for port in redis_cluster.ports}


def test_a_cluster_client_passed_in_is_used_as_is(redis_cluster) -> None:
    with redis_cluster.client() as client:
        broker = RedisBroker(client, clock=FakeClock(start=START))
        broker.set_namespace("given")
        try:
            assert broker.redis is client
            broker.enqueue_jobs([queued := job()])
            assert [j.id for j in broker.get_jobs_from_queue("q", 10)] == [queued.id]
        finally:
            broker.flush()
            broker.stop()


def test_a_cluster_client_decoding_replies_is_given_a_binary_twin(redis_cluster) -> None:
    with redis_cluster.client(decode_responses=True) as client:
        broker = RedisBroker(client, clock=FakeClock(start=START))
        broker.set_namespace("decoding")
        try:
            assert broker.redis is not client
            broker.push_raw("q", b"\xff\xfe not utf-8")
            assert broker.get_jobs_from_queue("q", 10) == []
            [letter] = broker.list_dead_letters()
            assert letter.payload.endswith(" not utf-8")
        finally:
            broker.flush()
            broker.stop()
            broker.redis.close()


def test_scripts_load_on_every_node(make, redis_cluster) -> None:
    broker = make()
    broker.start()
    sha = broker._scripts["fetch"].sha
    for port in redis_cluster.ports:
        with redis_cluster.node_client(port) as client:
            assert client.script_exists(sha) == [True]


def test_inspection_reads_without_cluster_transactions(make, monkeypatch) -> None:
    """redis-py before 6.1 refuses transactions on a cluster: inspection reads anyway."""
    broker = make()
    pipeline = broker.redis.pipeline

    def old_pipeline(transaction: Any = None, shard_hint: Any = None) -> Any:
        if transaction:
            raise RedisClusterException("transaction is deprecated in cluster mode")
        return pipeline(transaction=transaction, shard_hint=shard_hint)

    monkeypatch.setattr(broker.redis, "pipeline", old_pipeline)
    broker.register_worker(WorkerInfo(id=broker.worker_id))
    broker.enqueue_jobs([queued := job(), job(delay=10)])
    broker.push_raw("q", "{not json")
    assert [j.id for j in broker.get_jobs_from_queue("q", 10)] == [queued.id]

    assert broker.next_future_job_delta() == 10
    assert [w.id for w in broker.workers()] == [broker.worker_id]
    assert {w: [j.id for j in js] for w, js in broker.running_jobs().items()} == {
        broker.worker_id: [queued.id]
    }
    assert [letter.payload for letter in broker.list_dead_letters()] == ["{not json"]


# -- pub/sub ---------------------------------------------------------------------------------


def subscribers(cluster: RedisClusterServers, channel: str) -> int:
    """Connections subscribed to ``channel``, over every node."""
    total = 0
    for port in cluster.ports:
        with cluster.node_client(port) as client:
            total += dict(client.pubsub_numsub(channel)).get(channel.encode(), 0)
    return total


def test_a_notification_wakes_a_broker_listening_on_the_cluster(make, redis_cluster) -> None:
    sender, receiver = make(), make()
    with Subscriber(receiver):
        assert wait_until(lambda: subscribers(redis_cluster, receiver.channel) == 1)
        sender.enqueue_jobs([job()])
        assert wait_until(lambda: receiver.notifications_received >= 1)
    assert subscribers(redis_cluster, receiver.channel) == 0


def test_the_subscriber_listens_again_after_its_connection_is_killed(make, redis_cluster) -> None:
    # A namespace of its own: in ``ns`` an idle worker an earlier test left registered
    # could be handed the job with its wake-up, and no notification would be published.
    sender = make("resubscribe")
    receiver = make("resubscribe", reconnect_base_delay=0.01, reconnect_max_delay=0.05)
    with Subscriber(receiver):
        assert wait_until(lambda: subscribers(redis_cluster, receiver.channel) == 1)
        killed = 0
        for port in redis_cluster.ports:
            with redis_cluster.node_client(port) as admin:
                killed += admin.client_kill_filter(_type="pubsub")
        assert killed == 1
        assert wait_until(lambda: subscribers(redis_cluster, receiver.channel) == 1)
        sender.enqueue_jobs([job()])
        assert wait_until(lambda: receiver.notifications_received >= 1)


# -- hidden retries --------------------------------------------------------------------------


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def test_retries_of_the_cluster_client_are_logged_once(make, redis_cluster, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="spinach.brokers.redis")
    broker = make()
    key = broker.key("wake")
    reply: list[Any] = []
    blocked = threading.Thread(target=lambda: reply.append(broker.redis.blpop([key], timeout=5)))
    blocked.start()
    with redis_cluster.node_client(redis_cluster.port_of_tag("ns")) as admin:
        assert wait_until(lambda: admin.info("clients")["blocked_clients"] == 1)
        assert admin.client_kill_filter(_type="normal") >= 1  # the blocked command's
        assert wait_until(lambda: admin.info("clients")["blocked_clients"] == 1)  # sent again
        admin.rpush(key, "1")
    blocked.join(WAIT)

    assert reply == [(key.encode(), b"1")]
    assert len(logged(caplog, "Lost the connection to Redis")) == 1
    assert len(logged(caplog, "Reconnected to Redis")) == 1


# -- engines ---------------------------------------------------------------------------------


class NamespaceEngine:
    """An engine of one namespace on the cluster, with its fake clock, tasks and signals."""

    def __init__(self, url: str, namespace: str):
        self.clock = FakeClock(start=START)
        self.broker = RedisBroker(url, clock=self.clock, idle_poll_interval=0.2)
        self.engine = Engine(self.broker, namespace=namespace)
        self.recorder = SignalRecorder(namespace)
        self.ran: list[tuple[str, Any]] = []
        self.tasks = Tasks()
        self.tasks.add(lambda arg: self.ran.append((namespace, arg)), name="work")
        self.engine.attach_tasks(self.tasks)

    def advance(self, seconds: float) -> None:
        """Move time forward and wake the arbiter, as a notification would."""
        self.clock.advance(seconds)
        self.broker.notify_local()

    def close(self) -> None:
        self.engine.stop_workers()
        self.recorder.close()


@pytest.fixture
def two_engines(redis_cluster_url: str, redis_cluster) -> Iterator[tuple[NamespaceEngine, ...]]:
    first, second = namespaces_on_two_nodes(redis_cluster)
    engines = (
        NamespaceEngine(redis_cluster_url, first),
        NamespaceEngine(redis_cluster_url, second),
    )
    yield engines
    for engine in engines:
        engine.close()


def test_engines_of_two_namespaces_on_two_nodes(two_engines, redis_cluster) -> None:
    a, b = two_engines
    flaky_calls: list[int] = []

    @a.tasks.task(name="flaky", max_retries=1)
    def flaky() -> None:
        flaky_calls.append(1)
        if len(flaky_calls) == 1:
            raise ValueError("first attempt fails")

    a.tasks.add(lambda: None, name="tick", periodicity=timedelta(seconds=10))
    a.engine.attach_tasks(a.tasks)
    a.engine.schedule("work", "a-now")
    later = datetime.fromtimestamp(START + 60, tz=timezone.utc)
    assert a.engine.schedule_at("work", later, "a-later").status.name == "WAITING"
    a.engine.schedule("flaky")
    b.engine.schedule("work", "b-now")
    a.engine.start_workers(number=2, block=False)
    b.engine.start_workers(number=2, block=False)

    a.recorder.wait_for_count("job_finished", 1, "work")
    a.recorder.wait_for_count("job_finished", 1, "tick")
    a.recorder.wait_for_count("job_schedule_retry", 1, "flaky")
    b.recorder.wait_for_count("job_finished", 1, "work")
    assert wait_until(lambda: len(a.broker.scheduled_jobs()) == 2)  # later, flaky
    a.advance(3600)  # the delayed job, the retry and the next tick are due
    a.recorder.wait_for_count("job_finished", 2, "work")
    a.recorder.wait_for_count("job_finished", 2, "flaky")
    a.recorder.wait_for_count("job_finished", 2, "tick")

    assert sorted(a.ran) == [(a.engine.namespace, "a-later"), (a.engine.namespace, "a-now")]
    assert b.ran == [(b.engine.namespace, "b-now")]
    assert [e.status for e in a.recorder.of("job_finished", "flaky")] == ["WAITING", "SUCCEEDED"]
    assert not b.recorder.of("job_finished", "tick") and not b.recorder.of("job_failed")
    assert b.broker.inspect_periodic_tasks() == []
    _assert_keys_on_their_nodes(redis_cluster, a.engine.namespace, b.engine.namespace)


def _assert_keys_on_their_nodes(cluster: RedisClusterServers, *namespaces: str) -> None:
    """Each namespace's keys are all on the node of its slot, and only there."""
    found = keys_by_port(cluster)
    for namespace in namespaces:
        owner = cluster.port_of_tag(namespace)
        prefix = f"{{{namespace}}}/"
        mine = {port: {k for k in keys if k.startswith(prefix)} for port, keys in found.items()}
        assert mine[owner], f"no key of {namespace} on its node"
        assert all(not keys for port, keys in mine.items() if port != owner)


def test_a_job_is_handed_to_an_idle_worker_on_the_cluster(two_engines) -> None:
    """The worker's subscriber listens on the namespace's node (its first channel's slot),
    where enqueue counts the subscribers of the worker's channel."""
    a, _ = two_engines
    a.engine.start_workers(number=2, block=False)
    idle = a.broker.key("idle")
    assert wait_until(lambda: a.broker.redis.hexists(idle, a.broker.worker_id))

    a.engine.schedule("work", "handed")

    a.recorder.wait_for_count("job_finished", 1, "work")
    assert a.ran == [(a.engine.namespace, "handed")]
    assert a.broker.handovers_received == 1
