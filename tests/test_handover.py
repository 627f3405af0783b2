"""The job handed over with its wake-up: an idle worker registers under the id of its next
fetch, and the enqueue script does that fetch's work for a job due now, publishing it on the
worker's own channel (``RedisBroker``'s docstring, "Hand-over").

A real Redis server each; engines use long polling and bookkeeping intervals (``QUIET``), so
only the paths under test can start a job.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from spinach import Job, RedisBroker, job_codec, priority
from spinach.brokers.base import WorkerInfo
from spinach.testing import FakeClock

from .helpers import WAIT_TIMEOUT, wait_until
from .test_notified_fetch import Quiet, Runs, job
from .test_notified_fetch import make_engine as make_engine  # the fixture, shared


@pytest.fixture
def admin(redis_server: Any) -> Iterator[redis.Redis]:
    with redis_server.client() as client:
        yield client


@contextlib.contextmanager
def listening(admin: redis.Redis, *brokers: RedisBroker) -> Iterator[None]:
    """As if the subscribers of ``brokers`` listened: registered fetches, and a subscriber
    on each worker's channel (enqueue hands over only to a worker that has one)."""
    with admin.pubsub() as pubsub:
        pubsub.subscribe(*[broker.handover_channel for broker in brokers])
        channels = [broker.handover_channel.encode() for broker in brokers]
        assert wait_until(lambda: all(n for _, n in admin.pubsub_numsub(*channels)))
        for broker in brokers:
            broker._listening = True
        yield


def registered(admin: redis.Redis, broker: RedisBroker) -> bool:
    return bool(admin.hexists(broker.key("idle"), broker.worker_id))


def ready(quiet: Quiet, admin: redis.Redis) -> None:
    """Wait until the engine idles with nothing pending, registered for hand-overs."""
    quiet.wait()
    assert wait_until(lambda: registered(admin, quiet.broker))


def test_jobs_sent_to_an_idle_worker_are_handed_over_and_run_once(make_engine, admin):
    engine, producer, quiet = make_engine()
    runs = Runs()
    engine.task(name="record")(runs.add)
    engine.start_workers(4, block=False)
    broker = engine._broker

    for value in range(6):
        ready(quiet, admin)
        heard = broker.notifications_received
        producer.enqueue_jobs([job("record", value)])
        runs.wait_for([value])
        assert broker.notifications_received == heard  # no wake-up was published for it

    assert broker.handovers_received == 6  # from the messages: no fetch brought them
    engine.stop_workers()
    assert runs.counts == Counter(range(6))
    assert producer.running_jobs() == {}
    assert not registered(admin, broker)  # the stop ended the registration


def test_a_lost_hand_over_message_is_made_up_by_the_next_fetch(make_engine, admin):
    engine, producer, _ = make_engine(idle_poll_interval=0.05)
    runs = Runs()
    engine.task(name="record")(runs.add)
    broker = engine._broker
    dropped = threading.Event()
    broker._handed_over = lambda data: dropped.set()  # type: ignore[method-assign]
    engine.start_workers(2, block=False)
    assert wait_until(lambda: registered(admin, broker))

    producer.enqueue_jobs([job("record", 1)])

    assert dropped.wait(WAIT_TIMEOUT)  # heard and dropped: the job waits in the fetch cache
    runs.wait_for([1])  # the arbiter's next fetch (its idle poll) collected it
    engine.stop_workers()
    assert runs.counts == Counter([1])
    assert broker.handovers_received == 0
    assert producer.running_jobs() == {}


@pytest.mark.parametrize("heard", [False, True], ids=["message-lost", "message-kept"])
def test_a_stop_right_after_a_hand_over_gives_the_job_back(make_engine, admin, heard):
    """The job was handed over but not dispatched: the message lost, or kept for a turn
    that never comes. The stop's last fetch ends the registration and collects it."""
    engine, producer, quiet = make_engine()
    runs = Runs()
    engine.task(name="record")(runs.add)
    broker = engine._broker
    arrived = threading.Event()
    keep = broker._handed_over

    def hold(data: bytes) -> None:
        if heard:  # kept for the next fetch, which the stop never lets come
            broker.relay_notification = lambda: None  # type: ignore[method-assign]
            keep(data)
        arrived.set()

    broker._handed_over = hold  # type: ignore[method-assign]
    engine.start_workers(2, block=False)
    ready(quiet, admin)
    producer.enqueue_jobs([job("record", 1)])
    assert arrived.wait(WAIT_TIMEOUT)
    assert producer.running_jobs() != {}  # running under the worker, in the fetch cache

    engine.stop_workers()

    assert runs.counts == Counter()
    assert producer.running_jobs() == {}
    assert producer.queue_lengths() == {"spinach": 1}  # given back, not lost
    assert not registered(admin, broker)


def test_a_job_of_a_priority_band_is_handed_to_a_worker_of_its_queue(make_engine, admin):
    engine, producer, quiet = make_engine()
    runs = Runs()
    engine.task(name="record")(runs.add)
    engine.start_workers(2, block=False)
    ready(quiet, admin)

    producer.enqueue_jobs([Job("record", priority.band("spinach", 4), 0.0, 0, (1,))])

    runs.wait_for([1])
    assert engine._broker.handovers_received == 1
    engine.stop_workers()
    assert runs.counts == Counter([1])


def test_limited_and_future_jobs_are_not_handed_over(make_engine, admin):
    engine, producer, quiet = make_engine()
    runs = Runs()
    engine.task(name="record")(runs.add)
    engine.task(name="limited", max_concurrency=1)(runs.add)
    engine.task(name="rated", rate_limit="1000/s")(runs.add)
    engine.start_workers(2, block=False)
    broker = engine._broker

    ready(quiet, admin)
    producer.enqueue_jobs([job("limited", 1)])
    runs.wait_for([1])
    ready(quiet, admin)
    producer.enqueue_jobs([job("rated", 2)])
    runs.wait_for([2])
    ready(quiet, admin)
    later = Job("record", "spinach", producer.now() + 0.2, 0, (3,))
    producer.enqueue_jobs([later])
    assert later.status.name == "WAITING"
    runs.wait_for([3])

    assert broker.handovers_received == 0  # each came through a fetch
    engine.stop_workers()
    assert runs.counts == Counter([1, 2, 3])


def test_a_unique_job_handed_over_holds_its_key_while_it_runs(make_engine, admin):
    engine, producer, quiet = make_engine()
    started, release = threading.Event(), threading.Event()

    @engine.task(name="hold")
    def hold() -> None:
        started.set()
        assert release.wait(WAIT_TIMEOUT)

    engine.start_workers(2, block=False)
    ready(quiet, admin)
    first = Job("hold", "spinach", 0.0, 0)
    first.unique_key = "only-one"
    producer.enqueue_jobs([first])
    assert started.wait(WAIT_TIMEOUT)
    assert engine._broker.handovers_received == 1

    second = Job("hold", "spinach", 0.0, 0)
    second.unique_key = "only-one"
    producer.enqueue_jobs([second])
    assert (second.status.name, second.id) == ("RUNNING", first.id)  # the holder's
    release.set()
    engine.stop_workers()
    assert producer.running_jobs() == {}


def test_a_lapsed_registration_is_passed_by(redis_broker_factory, admin):
    clock = FakeClock(1_000_000.0)
    idle = redis_broker_factory(clock=clock, handover_ttl=3.0)
    producer = redis_broker_factory(clock=clock)
    with listening(admin, idle):
        assert idle.get_jobs_from_queue("q", 4) == []
        assert registered(admin, idle)

        clock.advance(3.0)  # its lapse time: no fetch renewed it
        producer.enqueue_jobs([Job("t", "q", clock(), 0)])

    assert producer.queue_lengths() == {"q": 1}  # queued as without a registration
    assert not registered(admin, idle)  # and the registration removed


def test_a_registration_without_a_subscriber_is_passed_by(redis_broker_factory, admin):
    """A worker killed while idle closed its subscriber connection: not handed jobs."""
    idle, producer = redis_broker_factory(), redis_broker_factory()
    with listening(admin, idle):
        assert idle.get_jobs_from_queue("q", 4) == []
    assert registered(admin, idle)  # its process died: the connection closed, nothing else

    producer.enqueue_jobs([Job("t", "q", 0.0, 0)])

    assert producer.queue_lengths() == {"q": 1}
    assert producer.running_jobs() == {}
    assert not registered(admin, idle)


def test_a_job_handed_to_a_worker_gone_silent_is_recovered_as_its_fetched_jobs(
    redis_broker_factory, admin
):
    clock = FakeClock(1_000_000.0)
    settings = dict(clock=clock, heartbeat_interval=1.0, dead_worker_threshold=10.0)
    dead, survivor = redis_broker_factory(**settings), redis_broker_factory(**settings)
    dead.register_worker(WorkerInfo(id=dead.worker_id, queues=["q"], threads=2))
    handed = Job("t", "q", clock(), 1)
    with listening(admin, dead):  # its connection lingers: a frozen process, a partition
        assert dead.get_jobs_from_queue("q", 2) == []  # registered, then it froze for good
        survivor.enqueue_jobs([handed])
    assert survivor.queue_lengths() == {}
    assert list(survivor.running_jobs()) == [dead.worker_id]

    clock.advance(11.0)
    survivor.register_worker(WorkerInfo(id=survivor.worker_id, queues=["q"], threads=2))
    [recovered] = survivor.recover_dead_workers(10.0)

    assert recovered.id == handed.id
    assert not registered(admin, dead)
    assert [job.id for job in survivor.get_jobs_from_queue("q", 2)] == [handed.id]


def test_the_hand_over_message_carries_the_fetch_id_job_id_and_payload_whole(
    redis_broker_factory, admin
):
    """The message is the JSON array [fetch id, job id, payload], its strings kept whole
    whatever they hold; the hand-over that spends a registration removes all of it."""
    idle, producer = redis_broker_factory(), redis_broker_factory()
    sent = Job("t", "q", 0.0, 0, ['a "quote", a / slash, a \\ backslash, \u00e9, \x01'], {})
    payload = job_codec.encode(sent)
    with admin.pubsub() as heard, listening(admin, idle):
        heard.subscribe(idle.handover_channel)
        assert heard.get_message(timeout=WAIT_TIMEOUT)["type"] == "subscribe"
        assert idle.get_jobs_from_queue("q", 1) == []  # registered for one job
        raw = admin.hget(idle.key("idle"), idle.worker_id)
        assert raw is not None
        fetch_id = json.loads(raw)["f"]

        producer.enqueue_jobs([sent])

        message = heard.get_message(timeout=WAIT_TIMEOUT)
    assert message is not None
    assert json.loads(message["data"]) == [fetch_id, sent.id, payload]
    assert not registered(admin, idle)  # spent: its entry and its queue's list both gone
    assert admin.zcard(idle.key("idle_for/q")) == 0


def test_a_fetch_sent_again_counts_the_jobs_handed_to_its_registration(redis_broker_factory, admin):
    """A fetch whose reply was lost registers again when sent again: the jobs handed to
    the registration of its first run in between still count against the room left."""
    worker, producer = redis_broker_factory(), redis_broker_factory()
    script = worker._scripts["fetch"]
    runs = 0

    def lose_the_first_reply(**kwargs: Any) -> Any:
        nonlocal runs
        runs += 1
        reply = script(**kwargs)
        if runs == 1:
            producer.enqueue_jobs([Job("t", "q", 0.0, 0)])  # handed to the registration
            raise redis.exceptions.ConnectionError("the reply was lost")
        return reply

    worker._scripts["fetch"] = lose_the_first_reply  # type: ignore[assignment]
    with listening(admin, worker):
        with pytest.raises(redis.exceptions.ConnectionError):
            worker.get_jobs_from_queue("q", 2)
        assert worker.get_jobs_from_queue("q", 2) == []  # sent again: registered again
        worker._scripts["fetch"] = script  # type: ignore[assignment]

        raw = admin.hget(worker.key("idle"), worker.worker_id)
        assert raw is not None
        registration = json.loads(raw)
        assert registration["n"] == 1  # 2 asked, 1 handed already
        [handed] = worker.get_jobs_from_queue("q", 2)  # the next fetch collects it
    assert handed.attempt == registration["f"]  # running in the registered fetch's attempt
    assert list(producer.running_jobs()) == [worker.worker_id]


def test_a_fetch_counts_the_handed_jobs_it_brings_against_the_free_workers(
    redis_broker_factory, admin
):
    """Jobs handed over whose messages were not heard come with the next fetch: they take
    free workers too, so the fetch takes that many fewer from the queues."""
    worker, producer = redis_broker_factory(), redis_broker_factory()
    jobs = [Job("t", "q", 0.0, 0) for _ in range(4)]
    with listening(admin, worker):
        assert worker.get_jobs_from_queue("q", 2) == []  # registered for two jobs
        for each in jobs:
            producer.enqueue_jobs([each])  # two handed over (the messages unread), two queued

        fetched = worker.get_jobs_from_queue("q", 2)

    assert [job.id for job in fetched] == [job.id for job in jobs[:2]]
    assert producer.queue_lengths() == {"q": 2}  # not taken beyond the two free workers


def test_a_fetch_gives_the_jobs_handed_over_before_those_it_takes_from_the_queues(
    redis_broker_factory, admin
):
    """A registration's room filled, the next jobs are queued: the fetch that brings the
    unheard handed jobs and takes the queued ones gives them in the order they were sent."""
    worker, producer = redis_broker_factory(), redis_broker_factory()
    jobs = [Job("t", "q", 0.0, 0, task_args=[n]) for n in range(4)]
    with listening(admin, worker):
        assert worker.get_jobs_from_queue("q", 2) == []  # registered for two jobs
        for each in jobs:
            producer.enqueue_jobs([each])  # two handed over (the messages unread), two queued

        fetched = worker.get_jobs_from_queue("q", 4)

    assert [job.id for job in fetched] == [job.id for job in jobs]


def test_jobs_handed_over_unheard_come_whole_and_in_order_with_the_next_fetch(
    redis_broker_factory, admin
):
    """The jobs handed to a registration are appended to its fetch id's entry, not decoded
    and encoded again each time: whatever their arguments hold, the next fetch brings each
    once, as sent, in the order they were handed."""
    worker, producer = redis_broker_factory(), redis_broker_factory()
    awkward = ['a "quoted", comma', "back\\slash / slash", "été ✓", "[]", "{}"]
    jobs = [Job("t", "q", 0.0, 0, task_args=[value, n]) for n, value in enumerate(awkward * 3)]
    with listening(admin, worker):
        assert worker.get_jobs_from_queue("q", len(jobs)) == []  # room for all of them
        for each in jobs:
            producer.enqueue_jobs([each])  # each handed over, its message unread

        fetched = worker.get_jobs_from_queue("q", len(jobs))

    assert producer.queue_lengths() == {}
    assert [(job.id, job.task_args) for job in fetched] == [(job.id, job.task_args) for job in jobs]
    assert {job.attempt for job in fetched} == {fetched[0].attempt}  # the registered fetch's
    assert worker.get_jobs_from_queue("q", len(jobs)) == []  # brought once


def test_flush_deletes_the_jobs_handed_to_a_registration(redis_broker_factory, admin):
    """The fetch that registers a worker lists it among the fetchers (the enqueue does not,
    at each hand-over): a flush then finds the jobs handed over and deletes them."""
    worker, producer = redis_broker_factory(), redis_broker_factory()
    with listening(admin, worker):
        assert worker.get_jobs_from_queue("q", 2) == []
        producer.enqueue_jobs([Job("t", "q", 0.0, 0)])  # handed over, its message unread
    cache = worker.key(f"fetched/{worker.worker_id}")
    assert admin.exists(cache)

    producer.flush()

    assert not admin.exists(cache)
    assert worker.get_jobs_from_queue("q", 2) == []


def test_a_partitioned_namespace_hands_nothing_over(make_engine, admin):
    engine, producer, quiet = make_engine(partitions=2)
    runs = Runs()
    engine.task(name="record")(runs.add)
    engine.start_workers(2, block=False)
    quiet.wait()

    producer.enqueue_jobs([job("record", 1)])

    runs.wait_for([1])
    engine.stop_workers()
    assert engine._broker.handovers_received == 0
    assert admin.keys("*idle*") == []


def test_a_malformed_hand_over_message_is_ignored(redis_broker_factory, caplog):
    broker = redis_broker_factory()
    broker._handed_over(b"not a hand-over")
    broker._handed_over(b'["one", "two"]')
    assert broker._inbox == []
    assert caplog.text.count("Ignored a malformed message") == 2
