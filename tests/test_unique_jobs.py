"""Unique jobs through the engine: concurrent producers (threads, processes) on a real
Redis get one job, whose id every one of them is given; a second job once it ended; bad
keys refused at schedule time, nothing enqueued (the broker behaviour is in
tests/conformance/test_unique_jobs.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from spinach import Engine, MemoryBroker, const
from spinach.brokers.base import Broker
from spinach.job import Job
from spinach.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
SCHEDULES = 1_000


def send_report(to: str, *, week: int) -> None:
    """A unique task: one report per recipient and week."""


def declare(engine: Engine) -> None:
    engine.task(send_report, name="report", unique=True)
    engine.task(send_report, name="keyed", unique_key=lambda to, week: f"{to}/{week}")


def ids_of_threads(engine: Engine, count: int) -> set[str]:
    def schedule(_: int) -> str:
        return engine.schedule("report", "ada@example.com", week=7).id

    with ThreadPoolExecutor(8, thread_name_prefix="producer") as pool:
        return set(pool.map(schedule, range(count)))


def end(broker: Broker, dead: bool = False) -> str:
    """Fetch the one queued job and end it (finished, or dead-lettered); its id."""
    [job] = broker.get_jobs_from_queue(const.DEFAULT_QUEUE, 10)
    if dead:
        broker.dead_letter(job, "its task is unknown")
    else:
        broker.remove_job_from_running(job)
    return job.id


def test_concurrent_threads_get_one_job(redis_broker_factory) -> None:
    engine = Engine(redis_broker_factory(namespace="unique"), namespace="unique")
    declare(engine)
    [first] = ids_of_threads(engine, SCHEDULES)
    assert engine.broker.queue_lengths() == {const.DEFAULT_QUEUE: 1}

    assert end(engine.broker) == first
    [second] = ids_of_threads(engine, SCHEDULES)  # the key was released: a second job
    assert second != first
    assert end(engine.broker, dead=True) == second
    [third] = ids_of_threads(engine, 10)  # after a dead letter too
    assert third not in (first, second)


PRODUCER = """
import json, sys
from spinach import Engine, RedisBroker
from tests.test_unique_jobs import declare
engine = Engine(RedisBroker(sys.argv[1]), namespace="unique")
declare(engine)
ids = {engine.schedule("report", "ada@example.com", week=7).id for _ in range(int(sys.argv[2]))}
print(json.dumps(sorted(ids)))
"""


def test_two_producer_processes_get_one_job(redis_url: str, redis_broker_factory) -> None:
    command = [sys.executable, "-c", PRODUCER, redis_url, str(SCHEDULES // 2)]
    producers = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [producer.communicate(timeout=60)[0] for producer in producers]
    assert [producer.returncode for producer in producers] == [0, 0]

    ids = {job_id for output in outputs for job_id in json.loads(output)}
    broker = redis_broker_factory(namespace="unique")
    assert len(ids) == 1 and broker.queue_lengths() == {const.DEFAULT_QUEUE: 1}
    assert end(broker) == ids.pop()


def test_the_returned_job_is_the_stored_one() -> None:
    engine = Engine(MemoryBroker(), namespace="unique")
    declare(engine)
    first = engine.schedule("keyed", "ada@example.com", week=7)
    again = engine.schedule("keyed", to="ada@example.com", week=7)
    other = engine.schedule("keyed", "ada@example.com", week=8)

    assert again.id == first.id != other.id
    assert again.status.name == "QUEUED"
    assert engine.broker.queue_lengths() == {const.DEFAULT_QUEUE: 2}


def test_equal_arguments_in_any_keyword_order_share_a_key() -> None:
    engine = Engine(MemoryBroker(), namespace="unique")
    engine.task(lambda a, b: None, name="pair", unique=True)
    assert engine.schedule("pair", a=1, b=2).id == engine.schedule("pair", b=2, a=1).id
    assert engine.schedule("pair", 1, 2).id != engine.schedule("pair", a=1, b=2).id


def failing_key(to: str, week: int) -> str:
    raise KeyError(to)


@pytest.mark.parametrize(
    ("unique_key", "cause"),
    [
        (failing_key, "unique_key of task 'bad' raised KeyError('ada@example.com')"),
        (lambda to, week: week, "unique_key of task 'bad' must return a non-empty string, not 7"),
        (lambda to, week: [to], "must return a non-empty string, not ['ada@example.com']"),
        (lambda to, week: "", "must return a non-empty string, not ''"),
    ],
)
def test_a_bad_unique_key_is_refused_at_schedule_time(unique_key, cause: str) -> None:
    engine = Engine(MemoryBroker(), namespace="unique")
    engine.task(send_report, name="bad", unique_key=unique_key)
    with pytest.raises(ValueError) as raised:
        engine.schedule("bad", "ada@example.com", week=7)
    assert cause in str(raised.value)
    assert "nothing was scheduled" in str(raised.value)
    assert engine.broker.queue_lengths() == {}


def test_unique_arguments_without_a_json_form_are_refused() -> None:
    engine = Engine(MemoryBroker(), namespace="unique")
    engine.task(lambda value: None, name="raw", unique=True)
    with pytest.raises(ValueError, match="arguments of unique task 'raw' have no JSON form"):
        engine.schedule("raw", object())
    assert engine.broker.queue_lengths() == {}


def _corrupt_the_queued_payload(broker: Broker) -> None:
    """Replace the one payload queued in the default queue by a copy a fetch refuses (its
    task name a number), keeping its job id, as a payload damaged in the broker would."""
    if isinstance(broker, MemoryBroker):
        entries = broker._state().queues[const.DEFAULT_QUEUE]
        [entry] = entries
        data = json.loads(entry.payload)
        entries[0] = entry._replace(payload=json.dumps({**data, "task_name": 5}))
        return
    key = broker.key(f"queue/{const.DEFAULT_QUEUE}")
    [payload] = broker.redis.lrange(key, 0, -1)
    broker.redis.lset(key, 0, json.dumps({**json.loads(payload), "task_name": 5}))


def _holds_a_key(broker: Broker, job_id: str) -> bool:
    """Whether the broker still notes ``job_id`` as holding a unique key."""
    if isinstance(broker, MemoryBroker):
        return job_id in broker._state().unique_of
    return bool(broker.redis.hexists(broker.key("unique_of"), job_id))


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_payload_dead_lettered_at_fetch_releases_its_jobs_key(kind, redis_broker_factory):
    """The job of a payload a fetch sets aside is stored nowhere else: it ended, and its
    unique key is released (not left behind until its TTL, or for ever without one)."""
    broker = MemoryBroker() if kind == "memory" else redis_broker_factory(namespace="unique")
    engine = Engine(broker, namespace="unique")
    declare(engine)
    first = engine.schedule("report", "ada@example.com", week=7)
    _corrupt_the_queued_payload(broker)

    assert broker.get_jobs_from_queue(const.DEFAULT_QUEUE, 10) == []
    assert [letter.id for letter in broker.list_dead_letters()] == [first.id]
    assert not _holds_a_key(broker, first.id)
    second = engine.schedule("report", "ada@example.com", week=7)
    assert second.id != first.id


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_copy_of_a_running_job_dead_lettered_at_fetch_keeps_its_key(kind, redis_broker_factory):
    broker = MemoryBroker() if kind == "memory" else redis_broker_factory(namespace="unique")
    engine = Engine(broker, namespace="unique")
    declare(engine)
    first = engine.schedule("report", "ada@example.com", week=7)
    [running] = broker.get_jobs_from_queue(const.DEFAULT_QUEUE, 10)
    broker.push_raw(const.DEFAULT_QUEUE, running.serialize())  # a copy pushed by hand

    assert broker.get_jobs_from_queue(const.DEFAULT_QUEUE, 10) == []  # dead-lettered
    assert _holds_a_key(broker, first.id)
    assert engine.schedule("report", "ada@example.com", week=7).id == first.id


# -- data stored before a dead letter kept its unique_ttl (Redis) ---------------------------


def _dead_lettered_unique_job(broker: Broker, ttl: float, old_hold: bool = False) -> Job:
    """A unique job held for ``ttl`` seconds, fetched and dead-lettered; with ``old_hold``
    its hold is first left as a worker of an earlier release took it (without its ttl)."""
    job = Job("report", const.DEFAULT_QUEUE, broker.now(), 0)
    job.unique_key, job.unique_ttl = "report:k", ttl
    broker.enqueue_jobs([job])
    if old_hold:
        assert broker.redis.delete(broker.key("unique_ttl/report:k")) == 1
    [running] = broker.get_jobs_from_queue(const.DEFAULT_QUEUE, 10)
    broker.dead_letter(running, "its task is unknown")
    return job


def _held_by(broker: Broker, job_id: str) -> bool:
    again = Job("report", const.DEFAULT_QUEUE, broker.now(), 0)
    again.unique_key = "report:k"
    broker.enqueue_jobs([again])
    return again.id == job_id


def test_a_dead_letter_stored_without_its_ttl_is_held_while_its_job_lives(
    redis_broker_factory,
) -> None:
    """A dead letter kept before the ttl was: its retry holds the key as it did then."""
    clock = FakeClock()
    broker = redis_broker_factory(clock=clock, namespace="unique")
    job = _dead_lettered_unique_job(broker, ttl=10.0)
    broker.redis.delete(broker.key("dead_unique_ttl"))  # as the earlier script left it

    assert broker.retry_dead_letters() == 1
    clock.advance(3600)
    assert _held_by(broker, job.id)


def test_a_hold_taken_before_the_ttl_was_kept_is_retaken_for_what_was_left(
    redis_broker_factory,
) -> None:
    clock = FakeClock()
    broker = redis_broker_factory(clock=clock, namespace="unique")
    job = _dead_lettered_unique_job(broker, ttl=10.0, old_hold=True)

    assert broker.retry_dead_letters() == 1
    clock.advance(9)
    assert _held_by(broker, job.id)
    clock.advance(1)
    assert not _held_by(broker, job.id)


def test_a_hold_reads_as_before_and_its_ttl_goes_with_it(redis_broker_factory) -> None:
    """Workers of an earlier release read the hold itself unchanged (``"<expiry> <id>"``);
    the ttl kept beside it is deleted with it when the job ends."""
    clock = FakeClock()
    broker = redis_broker_factory(clock=clock, namespace="unique")
    job = Job("report", const.DEFAULT_QUEUE, broker.now(), 0)
    job.unique_key, job.unique_ttl = "report:k", 10.0
    broker.enqueue_jobs([job])
    hold, kept = broker.key("unique/report:k"), broker.key("unique_ttl/report:k")
    expiry, holder = broker.redis.get(hold).decode().split(" ", 1)
    assert (float(expiry), holder) == (clock() + 10.0, job.id)
    assert broker.redis.get(kept) == f"10.0 {job.id}".encode()

    [running] = broker.get_jobs_from_queue(const.DEFAULT_QUEUE, 10)
    broker.remove_job_from_running(running)
    assert broker.redis.exists(hold, kept) == 0
