"""Partitioned Redis namespaces (``RedisBroker(..., partitions=N)``), against a real
redis-server: the partition count, routing, fair fetches, the layout guard, the inspection
API merged over the partitions, recovery and periodic tasks on every partition.

The behaviour shared with every broker runs on partitioned namespaces in tests/conformance.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import json
import sys
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from spinach import Engine, RetryException, options
from spinach.brokers.base import WorkerInfo
from spinach.brokers.redis import RedisBroker
from spinach.brokers.redis_layout import (
    MAX_PARTITIONS,
    PartitionLayoutError,
    partition_of,
    partition_tags,
    split_url,
)
from spinach.brokers.redis_partitions import PartitionedRedisBroker
from spinach.history import HistoryRecord
from spinach.job import Job, JobStatus
from spinach.task import Task
from spinach.testing import FakeClock
from tests.conformance.support import ids

START = 1_700_000_000.0
N = 3
THRESHOLD = 30.0


def _noop() -> None:
    """The function of the tasks of these tests."""


def key_on(index: int, count: int = N) -> str:
    """A partition key routed to partition ``index`` of ``count``."""
    return next(k for k in (f"k{i}" for i in itertools.count()) if partition_of(k, count) == index)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=START)


@pytest.fixture
def make(redis_broker_factory, clock) -> Callable[..., RedisBroker]:
    """A broker of namespace ``ns`` on the test's server (``N`` partitions by default)."""

    def make_broker(namespace: str = "ns", partitions: int = N, **kw: Any) -> RedisBroker:
        return redis_broker_factory(clock=clock, namespace=namespace, partitions=partitions, **kw)

    return make_broker


@pytest.fixture
def broker(make) -> PartitionedRedisBroker:
    made = make()
    assert isinstance(made, PartitionedRedisBroker)
    return made


@pytest.fixture
def admin(redis_server) -> Any:
    with redis_server.client() as client:
        yield client


def job(task: str = "t", queue: str = "q", key: str | None = None, delay: float = 0.0) -> Job:
    made = Job(task, queue, START + delay, 0)
    made.partition_key = key
    return made


def lengths(broker: PartitionedRedisBroker, queue: str = "q") -> list[int]:
    """How many jobs wait in ``queue`` on each partition."""
    return [part.queue_lengths().get(queue, 0) for part in broker.partitions]


# -- the partition count ---------------------------------------------------------------------


@pytest.mark.parametrize("given", [{}, {"partitions": 1}, {"url": "?partitions=1"}])
def test_one_partition_is_today_s_layout(redis_url, admin, given) -> None:
    url = redis_url + given.get("url", "")
    plain = RedisBroker(url, **{k: v for k, v in given.items() if k != "url"})
    try:
        plain.set_namespace("ns")
        assert type(plain) is RedisBroker
        assert (plain.prefix, plain.channel) == ("{ns}/", "{ns}/notifications/0")
        plain.start()
        plain.enqueue_jobs([job()])
        assert admin.llen("{ns}/queue/q") == 1
        assert admin.get("{ns}/partitions") is None  # nothing recorded: the layout as it was
    finally:
        plain.stop()


@pytest.mark.parametrize("how", ["keyword", "url"])
def test_a_partitioned_broker_is_a_redis_broker(redis_url, how) -> None:
    if how == "keyword":
        made = RedisBroker(redis_url, partitions=3)
    else:
        made = RedisBroker(f"{redis_url}?partitions=3&health_check_interval=5")
    try:
        made.set_namespace("ns")
        assert isinstance(made, RedisBroker) and isinstance(made, PartitionedRedisBroker)
        assert made.partition_count == 3
        tags = partition_tags("ns", 3)
        assert [part.prefix for part in made.partitions] == [f"{{{tag}}}/" for tag in tags]
        assert [tag.split("~")[1] for tag in tags] == ["0", "1", "2"]
        assert {part.channel for part in made.partitions} == {"{ns}/notifications/0"}
        assert made.key("results/1") == "{ns}/results/1"  # shared state: the namespace's
    finally:
        made.stop()


@pytest.mark.parametrize("bad", [0, -1, True, False, "3", 2.0, "three", MAX_PARTITIONS + 1])
def test_a_bad_partition_count_is_refused(redis_url, bad) -> None:
    with pytest.raises(ValueError, match=r"partitions must be an int from 1 to 1024, not "):
        RedisBroker(redis_url, partitions=bad)


@pytest.mark.parametrize("query", ["partitions=three", "partitions=0", "partitions=-2",
                                   "partitions=", "partitions=2&partitions=3"])  # fmt: skip
def test_a_bad_partition_count_in_the_url_is_refused(redis_url, query) -> None:
    with pytest.raises(ValueError, match=r"partitions in the Redis URL must be an int from 1"):
        RedisBroker(f"{redis_url}?{query}")


@pytest.mark.parametrize("count", [2, 3, 4, 7, 64])
def test_the_tags_spread_over_the_slots(count: int) -> None:
    tags = partition_tags("orders", count)
    for index, tag in enumerate(tags):
        assert index * 16384 // count <= key_slot(tag.encode()) < (index + 1) * 16384 // count
        assert tag == f"orders~{index}" or tag.startswith(f"orders~{index}~")


def test_the_tags_keep_off_the_edges_of_their_range() -> None:
    # redis-cli gives the second of three nodes the slots 5461-10922: a tag of the third
    # partition on slot 10922, the first of its range, was on the second node. "ns4632"
    # had it (found by search); its third tag now moves on to another suffix.
    for count in (3, 6, 1024):
        for index, tag in enumerate(partition_tags("ns4632", count)):
            low, high = index * 16384 // count, (index + 1) * 16384 // count
            assert low < key_slot(tag.encode()) < high - 1


def test_a_count_given_twice_must_agree(redis_url) -> None:
    with pytest.raises(ValueError, match=r"partitions=4 contradicts \?partitions=3"):
        RedisBroker(f"{redis_url}?partitions=3", partitions=4)
    agreed = RedisBroker(f"{redis_url}?partitions=3", partitions=3)
    agreed.stop()


def test_the_url_keeps_its_other_parameters() -> None:
    assert split_url("redis://h:1/2?a=1&partitions=3&b=2") == ("redis://h:1/2?a=1&b=2", 3)
    assert split_url("redis://h:1/2?a=1") == ("redis://h:1/2?a=1", None)


def test_a_subclass_cannot_be_partitioned(redis_url) -> None:
    class Custom(RedisBroker):
        pass

    with pytest.raises(ValueError, match="Custom cannot spread a namespace over partitions"):
        Custom(redis_url, partitions=2)


def test_every_public_method_is_fanned_out_or_meant_to_be_inherited() -> None:
    """A method added to RedisBroker must be fanned out (or named here): inherited as is,
    it would act on the namespace's shared prefix only."""
    inherited = {
        "add_members", "allow_connections", "claim", "connection_errors", "delete",
        "get_bytes", "get_values", "handover_channel", "hash_delete", "hash_get", "hash_set",
        "increment", "key",
        "max_fetch_size",
        "event_pending", "members", "notify_local", "now", "publish_value", "redis",
        "relay_notification", "run_subscriber", "room_after_handover",
        "set_values", "start", "stop", "wait_for_event", "watch",
    }  # fmt: skip
    public = {name for name, _ in inspect.getmembers(RedisBroker) if not name.startswith("_")}
    fanned_out = {name for name in public if name in vars(PartitionedRedisBroker)}
    assert public - fanned_out == inherited


# -- routing ---------------------------------------------------------------------------------


def test_jobs_with_one_partition_key_stay_in_order_on_one_partition(broker) -> None:
    jobs = [job(key="customer-7") for _ in range(12)]
    broker.enqueue_jobs(jobs)

    home = partition_of("customer-7", N)
    assert lengths(broker) == [12 if i == home else 0 for i in range(N)]
    fetched = [j for _ in range(12) for j in broker.get_jobs_from_queue("q", 1)]
    assert ids(fetched) == ids(jobs)


def test_other_jobs_spread_over_every_partition(broker) -> None:
    broker.enqueue_jobs([job() for _ in range(90)])

    assert all(count > 0 for count in lengths(broker))
    assert sum(lengths(broker)) == 90


def test_a_job_sent_again_is_stored_once(broker) -> None:
    again = job()
    broker.enqueue_jobs([again])
    broker.enqueue_jobs([again])  # a producer's retry after a lost reply

    assert broker.queue_lengths() == {"q": 1}


def test_a_unique_job_is_unique_across_partitions_and_producers(make, broker) -> None:
    task = Task(_noop, "report", queue="q", unique=True)
    producers = [broker, make(), make()]
    first, *others = (task.new_job(START, ("2024",)) for _ in producers)
    for producer, made in zip(producers, [first, *others], strict=True):
        producer.enqueue_jobs([made])

    assert broker.queue_lengths() == {"q": 1}
    assert {made.id for made in others} == {first.id}


def test_a_limited_task_s_jobs_live_on_the_partition_of_its_name(broker) -> None:
    by_rate = Task(_noop, "by-rate", queue="q", rate_limit="100/s")
    by_concurrency = Task(_noop, "by-concurrency", queue="q", max_concurrency=2, unique=True)
    broker.enqueue_jobs([by_rate.new_job(START, (n,)) for n in range(9)])
    broker.enqueue_jobs([by_concurrency.new_job(START, (n,)) for n in range(9)])

    for name in ("by-rate", "by-concurrency"):
        home = broker.partitions[partition_of(name, N)]
        assert [j.task_name for j in home.queue_jobs("q")].count(name) == 9


def test_the_limit_of_a_task_holds_over_every_partition(broker, make) -> None:
    task = Task(_noop, "limited", queue="q", max_concurrency=2)
    broker.set_concurrency_keys([task])
    broker.enqueue_jobs([task.new_job(START) for _ in range(6)])
    peer = make()

    running = [j for b in (broker, peer, broker, peer) for j in b.get_jobs_from_queue("q", 10)]
    assert len(running) == 2


def test_a_hand_built_job_of_a_limited_task_goes_to_its_home(broker) -> None:
    broker.set_concurrency_keys([Task(_noop, "limited", rate_limit="1/s")])
    broker.enqueue_jobs([job("limited") for _ in range(6)])

    assert lengths(broker)[partition_of("limited", N)] == 6


def test_the_routing_key_of_a_job_built_by_the_engine(redis_url) -> None:
    engine = Engine(RedisBroker(redis_url, partitions=N), namespace="ns")

    @engine.task(name="plain")
    def plain(n: int) -> None: ...

    @engine.task(name="tenant", partition_key="tenants")
    def tenant(n: int) -> None: ...

    @engine.task(name="unique", unique=True)
    def unique(n: int) -> None: ...

    @engine.task(name="limited", rate_limit="5/s", unique=True)
    def limited(n: int) -> None: ...

    def built(task: Any, **call: Any) -> Job:
        return engine.build_job(options(task, **call) if call else task, None, (1,))

    def key_of(task: Any, **call: Any) -> str | None:
        return built(task, **call).partition_key

    try:
        assert key_of(plain) is None
        assert key_of(plain, partition_key="customer-1") == "customer-1"
        assert key_of(tenant) == "tenants"
        assert key_of(tenant, partition_key="customer-1") == "customer-1"
        assert key_of(unique, partition_key="customer-1") == built(unique).unique_key
        assert key_of(limited, partition_key="customer-1") == "limited"
        with pytest.raises(ValueError, match="partition_key of task 'plain' must be None or"):
            options(plain, partition_key=7)
    finally:
        engine.broker.stop()


# -- fetching ----------------------------------------------------------------------------


def test_no_partition_is_starved(broker) -> None:
    broker.enqueue_jobs([job(key=key_on(0)) for _ in range(20)])
    lonely = [job(key=key_on(i)) for i in range(1, N)]
    broker.enqueue_jobs(lonely)

    fetched = [j for _ in range(N) for j in broker.get_jobs_from_queue("q", 1)]
    assert set(ids(lonely)) <= set(ids(fetched))


def test_a_fetch_stops_asking_once_it_has_max_jobs(broker, monkeypatch) -> None:
    broker.enqueue_jobs([job(key=key_on(i)) for i in range(N) for _ in range(3)])
    asked: list[int] = []
    for part in broker.partitions:
        fetch = part.get_jobs_from_queue

        def counted(*args: Any, _fetch: Any = fetch, _index: int = part.index) -> list[Job]:
            asked.append(_index)
            return _fetch(*args)

        monkeypatch.setattr(part, "get_jobs_from_queue", counted)

    assert len(broker.get_jobs_from_queue("q", 2)) == 2
    assert len(asked) == 1
    assert len(broker.get_jobs_from_queue("q", 5)) == 5
    assert len(asked) == 1 + 2


def test_an_idle_fetch_asks_every_partition_once(broker) -> None:
    assert broker.get_jobs_from_queue(["q", "other"], 10) == []
    assert broker.is_queue_empty("q")


def test_an_unreachable_partition_does_not_strand_the_jobs_of_the_others(broker, monkeypatch):
    broker.enqueue_jobs([job(key=key_on(i)) for i in range(N)])

    def down(*args: Any) -> list[Job]:
        raise redis.ConnectionError("a node is down")

    monkeypatch.setattr(broker.partitions[1], "get_jobs_from_queue", down)
    monkeypatch.setattr(broker.partitions[1], "unsettled_jobs", down)
    assert len(broker.get_jobs_from_queue("q", 10)) == N - 1  # the others' jobs, not lost
    with pytest.raises(redis.ConnectionError):  # nothing came: the error is raised
        broker.get_jobs_from_queue("q", 10)
    with pytest.raises(redis.ConnectionError):
        broker.unsettled_jobs()
    monkeypatch.undo()
    assert len(broker.get_jobs_from_queue("q", 10)) == 1


# -- the layout guard ------------------------------------------------------------------------


def test_another_count_on_a_partitioned_namespace_is_refused(make, admin) -> None:
    make(partitions=3).start()
    make(partitions=3).start()  # the same count: fine
    assert admin.get("{ns}/partitions") == b"3"

    for other in (4, 1):
        with pytest.raises(PartitionLayoutError) as refused:
            make(partitions=other).start()
        message = str(refused.value)
        assert f"runs with partitions=3, not the {other} asked" in message
        assert "flush()" in message


def test_a_live_one_partition_namespace_refuses_partitions(make) -> None:
    plain = make(partitions=1)
    plain.start()
    plain.enqueue_jobs([job()])

    with pytest.raises(PartitionLayoutError, match="runs with partitions=1, not the 3 asked"):
        make(partitions=3).start()
    plain.flush()
    make(partitions=3).start()


def test_flush_forgets_the_partition_count(make) -> None:
    partitioned = make(partitions=3)
    partitioned.start()
    partitioned.flush()
    make(partitions=1).start()
    make(partitions=2).start()


def test_a_worker_started_with_another_count_exits_at_once(
    make, redis_url, tmp_path: Path, monkeypatch, capsys
) -> None:
    from spinach import cli

    make(partitions=3).start()
    source = f"""from spinach import Engine, RedisBroker
spin = Engine(RedisBroker({redis_url!r}, partitions=2), namespace="ns")
"""
    (tmp_path / "recounted_app.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "recounted_app", raising=False)

    assert cli.main(["worker", "recounted_app:spin", "--broker-retries", "50"]) == 1
    err = capsys.readouterr().err
    assert "refused this worker: namespace 'ns' runs with partitions=3, not the 2 asked" in err
    assert "attempt" not in err  # not retried as an unreachable broker
    sys.modules["recounted_app"].spin.broker.stop()


# -- inspection, merged over the partitions ------------------------------------------------


def _spread_state(broker: PartitionedRedisBroker, clock: FakeClock) -> dict[str, list[Job]]:
    """Jobs waiting, due later, running and dead on every partition."""
    waiting = [job(key=key_on(i)) for i in range(N) for _ in range(2)]
    later = [job(key=key_on(i), delay=10.0 * (N - i)) for i in range(N)]
    broker.enqueue_jobs([*waiting, *later])
    broker.register_worker(WorkerInfo(id=broker.worker_id, queues=["q"], threads=4))
    running = [j for _ in range(N) for j in broker.get_jobs_from_queue("q", 1)]
    dead = broker.get_jobs_from_queue("q", 1)
    for letter in dead:
        clock.advance(1)
        broker.dead_letter(letter, "a test's dead letter")
    return {"waiting": waiting, "later": later, "running": running, "dead": dead}


def test_inspection_merges_the_partitions(broker, clock) -> None:
    state = _spread_state(broker, clock)

    assert broker.queue_lengths() == {"q": 2 * N - N - 1}
    assert ids(broker.scheduled_jobs()) == ids(state["later"][::-1])  # soonest first
    assert broker.scheduled_counts() == {"q": N}
    page, total = broker.scheduled_page(1, 1)
    assert (ids(page), total) == ([state["later"][N - 2].id], N)
    running = broker.running_jobs()
    assert sorted(ids(running[broker.worker_id])) == sorted(ids(state["running"]))
    assert set(broker.running_since()) == set(ids(state["running"]))
    assert len(broker.queue_jobs("q")) == 2 * N - N - 1
    assert len(broker.queue_jobs("q", offset=1, limit=10)) == 2 * N - N - 2
    assert [letter.id for letter in broker.list_dead_letters()] == ids(state["dead"])
    assert broker.dead_letter_count() == 1
    assert not broker.is_queue_empty("q")
    assert [w.id for w in broker.workers()] == [broker.worker_id]


def test_dead_letters_are_retried_and_purged_on_every_partition(broker, clock) -> None:
    for i in range(N):
        broker.enqueue_jobs([job(key=key_on(i))])
    letters = [j for _ in range(N) for j in broker.get_jobs_from_queue("q", 1)]
    for letter in letters:
        clock.advance(1)
        broker.dead_letter(letter, "unknown task")

    assert [d.id for d in broker.list_dead_letters()] == ids(letters)  # oldest first
    assert broker.retry_dead_letters([letters[0].id, "no-such-id"]) == 1
    assert broker.purge_dead_letters() == N - 1
    assert broker.queue_lengths() == {"q": 1}


def test_history_is_kept_across_partitions(broker, clock) -> None:
    records = [
        HistoryRecord(f"job-{n}", "t", "q", "succeeded", 1, START, START, START + n, 0.0, "[]")
        for n in range(12)
    ]
    broker.record_history(records, retention=3600.0, max_records=100)

    assert len({partition_of(r.id, N) for r in records}) == N  # spread
    assert [r.id for r in broker.history(0, 5)] == [f"job-{n}" for n in range(11, 6, -1)]
    assert [r.id for r in broker.history(10, 5)] == ["job-1", "job-0"]
    assert broker.history_record("job-4") == records[4]
    assert broker.history_record("no-such-job") is None
    clock.advance(12)
    assert sum(broker.finished_counts(5)["q"]) == 12


def test_the_broker_gauges_count_every_partition(broker, clock) -> None:
    prometheus = pytest.importorskip("spinach.contrib.prometheus")
    _spread_state(broker, clock)
    registry = prometheus.CollectorRegistry()
    registry.register(prometheus.BrokerCollector(broker))

    def gauge(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"namespace": "ns", **labels})

    assert gauge("spinach_queue_jobs", queue="q") == 2 * N - N - 1
    assert gauge("spinach_future_jobs") == N
    assert gauge("spinach_running_jobs") == N
    assert gauge("spinach_dead_letters") == 1
    assert gauge("spinach_workers_alive") == 1


def test_the_cli_sees_every_partition(redis_url, tmp_path: Path, monkeypatch, capsys) -> None:
    from spinach import cli

    source = f"""from datetime import timedelta
from spinach import Engine, RedisBroker
spin = Engine(RedisBroker({redis_url!r}, partitions={N}), namespace="ns")
for name in ("tick", "tock", "tack"):
    spin.task(name=name, periodicity=timedelta(seconds=60))(lambda: None)
"""
    (tmp_path / "partitioned_app.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "partitioned_app", raising=False)
    app = importlib.import_module("partitioned_app")
    try:
        broker = app.spin.broker
        broker.register_periodic_tasks(list(app.spin._tasks))
        for i in range(N):
            broker.enqueue_jobs([job(key=key_on(i))])
        for letter in [j for _ in range(N) for j in broker.get_jobs_from_queue("q", 1)]:
            broker.dead_letter(letter, "unknown task")

        assert cli.main(["dead-letters", "list", "partitioned_app:spin", "--json"]) == 0
        assert len(json.loads(capsys.readouterr().out)) == N
        assert cli.main(["periodic", "list", "partitioned_app:spin", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert sorted(entry["task"] for entry in listed) == ["tack", "tick", "tock"]
        assert cli.main(["dead-letters", "retry", "partitioned_app:spin"]) == 0
        assert broker.queue_lengths() == {"q": N}
    finally:
        app.spin.broker.stop()


# -- liveness, recovery, periodic tasks ----------------------------------------------------


def test_a_worker_is_registered_and_recovered_on_every_partition(make, clock) -> None:
    vanished, survivor = make(), make()
    for worker in (vanished, survivor):
        worker.register_worker(WorkerInfo(id=worker.worker_id, queues=["q"], threads=4))
    jobs = [job(key=key_on(i)) for i in range(N) for _ in range(2)]
    for made in jobs:
        made.max_retries = 1
    vanished.enqueue_jobs(jobs)
    assert len(vanished.get_jobs_from_queue("q", 10)) == 2 * N
    assert all(part.running_jobs() for part in vanished.partitions)

    clock.advance(THRESHOLD + 1)  # the vanished worker sends no heartbeat any more
    survivor.heartbeat()
    recovered = survivor.recover_dead_workers(THRESHOLD)

    assert sorted(ids(recovered)) == sorted(ids(jobs))
    assert {j.status for j in recovered} == {JobStatus.QUEUED}
    assert lengths(survivor) == [2] * N
    assert [w.id for w in survivor.workers()] == [survivor.worker_id]


def test_a_worker_declared_dead_says_so_once(make, clock, caplog) -> None:
    slow, other = make(), make()
    for worker in (slow, other):
        worker.register_worker(WorkerInfo(id=worker.worker_id, queues=["q"], threads=1))
    clock.advance(THRESHOLD + 1)
    other.heartbeat()
    other.recover_dead_workers(THRESHOLD)  # drops the slow one from every partition
    assert [w.id for w in other.workers()] == [other.worker_id]

    with caplog.at_level("WARNING", logger="spinach.brokers.redis"):
        slow.heartbeat()  # registers again, on every partition
    assert [r.message for r in caplog.records].count(
        f"Worker {slow.worker_id} was declared dead (no heartbeat for too long) and "
        "registered again; its running jobs may have been recovered by other workers"
    ) == 1
    assert all(slow.worker_id in [w.id for w in p.workers()] for p in slow.partitions)


def test_a_worker_id_set_later_reaches_the_partitions(broker) -> None:
    broker.worker_id = "renamed"
    broker.register_worker(WorkerInfo(id="renamed", queues=["q"], threads=1))
    broker.enqueue_jobs([job()])
    [fetched] = broker.get_jobs_from_queue("q", 1)

    assert list(broker.running_jobs()) == ["renamed"]
    broker.deregister_worker()
    assert broker.workers() == []
    assert fetched.attempt is not None


def test_a_periodic_task_fires_once_per_period_across_workers(make, clock) -> None:
    names = ["tick", "tock", "tack", "tuck"]
    tasks = [Task(_noop, name, queue="q", periodicity=timedelta(seconds=10)) for name in names]
    workers = [make(), make()]
    for worker in workers:
        worker.register_periodic_tasks(tasks)
    for worker in workers:  # on the partition of its name only
        for name in names:
            home = worker.partitions[partition_of(name, N)]
            assert name in [n for _, n in home.inspect_periodic_tasks()]
    assert len(workers[0].inspect_periodic_tasks()) == len(names)

    for _ in range(3):
        assert sum(worker.move_future_jobs() for worker in workers) == len(names)
        assert workers[0].next_future_job_delta() == pytest.approx(10.0)
        clock.advance(10)
    fired = workers[1].get_jobs_from_queue("q", 100)
    assert sorted(j.task_name for j in fired) == sorted(names * 3)


# -- the engine on a partitioned namespace -------------------------------------------------


def test_an_engine_runs_jobs_over_every_partition(redis_url) -> None:
    engine = Engine(RedisBroker(redis_url, partitions=N), namespace="ns")
    ran: list[int] = []
    attempts: dict[int, int] = {}

    @engine.task(name="work", max_retries=1)
    def work(n: int) -> None:
        attempts[n] = attempts.get(n, 0) + 1
        if n % 5 == 0 and attempts[n] == 1:  # fails once: retried on its own partition
            raise RetryException("again", at=datetime.now(timezone.utc))
        ran.append(n)

    try:
        for n in range(30):
            engine.schedule(options(work, partition_key=f"c{n % 4}"), n)
        engine.start_workers(number=4, block=False, stop_when_queue_empty=True)
        assert engine.wait_until_stopped(30)
        assert sorted(ran) == list(range(30))
        assert engine.broker.running_jobs() == {}
        assert engine.broker.queue_lengths() == {}
    finally:
        engine.broker.stop()


def test_redis_py_never_sees_the_partitions_parameter(redis_url) -> None:
    made = RedisBroker(f"{redis_url}?partitions=2")
    try:
        assert "partitions" not in made.redis.get_connection_kwargs()
        assert isinstance(made.redis, redis.Redis)
    finally:
        made.stop()


def test_the_dashboard_s_quick_broker_reads_every_partition(broker) -> None:
    from spinach.dashboard.server import _quick_broker

    broker.enqueue_jobs([job(key=key_on(i)) for i in range(N)])
    quick = _quick_broker(broker)
    try:
        assert isinstance(quick, PartitionedRedisBroker) and quick.partition_count == N
        assert quick.queue_lengths() == {"q": N}
    finally:
        quick.stop()


@pytest.mark.parametrize("namespace", ["ns4632", "ns7063", "ns15445"])
def test_tags_on_a_range_s_edge_still_spread_over_the_nodes(redis_cluster, namespace) -> None:
    # These namespaces' third tag, before tags kept off the edges, was on slot 10922.
    for count in (3, 6):
        ports = [redis_cluster.port_of_tag(tag) for tag in partition_tags(namespace, count)]
        assert Counter(ports) == dict.fromkeys(redis_cluster.ports, count // 3), ports


def test_the_partitions_spread_over_the_nodes_of_a_cluster(
    redis_cluster_broker_factory, redis_cluster
) -> None:
    broker = redis_cluster_broker_factory(namespace="orders", partitions=3)
    tags = partition_tags("orders", 3)
    assert len({redis_cluster.port_of_tag(tag) for tag in tags}) == 3

    broker.enqueue_jobs([job() for _ in range(60)])
    for tag in tags:  # each node holds its partition's share of the jobs
        with redis_cluster.node_client(redis_cluster.port_of_tag(tag)) as node:
            assert node.llen(f"{{{tag}}}/queue/q") > 0
