"""The subscriber's turn: a notification heard while the arbiter idles is fetched and
handed to the worker threads by the subscriber thread itself (``Arbiter.on_notification``).

Each test uses a real Redis server and an engine of its own; the broker's polling and
bookkeeping intervals are long, so that only the paths under test can start a job.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spinach import Engine, Job, RedisBroker
from spinach.worker_process import Worker

from .helpers import WAIT_TIMEOUT, wait_until

#: Long enough that no poll, heartbeat or dead-worker check wakes the arbiter in a test.
QUIET = dict(
    heartbeat_interval=60.0,
    dead_worker_threshold=300.0,
    dead_worker_check_interval=120.0,
    idle_poll_interval=120.0,
)


class Runs:
    """The runs of the ``record`` task: how many times each value ran, and a wait."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self._condition = threading.Condition()

    def add(self, value: int) -> None:
        with self._condition:
            self.counts[value] += 1
            self._condition.notify_all()

    def wait_for(self, values: range | list[int]) -> None:
        with self._condition:
            ran = self._condition.wait_for(
                lambda: all(self.counts[v] for v in values), WAIT_TIMEOUT
            )
        assert ran, f"not all of {list(values)} ran: {dict(self.counts)}"


Made = tuple[Engine, RedisBroker, "Quiet"]


@pytest.fixture
def make_engine(redis_broker_factory) -> Iterator[Callable[..., Made]]:
    """An engine on the test's Redis, a peer broker (another process's) to enqueue from
    and its ``Quiet``; the engines are stopped after."""
    engines: list[Engine] = []

    def make(**tunables: Any) -> Made:
        settings = {**QUIET, **tunables}
        engine = Engine(redis_broker_factory(namespace="notified", **settings), "notified")
        engines.append(engine)
        producer = redis_broker_factory(namespace="notified", **settings)
        return engine, producer, Quiet(engine)

    yield make
    for engine in engines:
        engine.stop_workers()


def job(task: str, *args: Any) -> Job:
    return Job(task, "spinach", 0.0, 0, args)


def worker_of(engine: Engine) -> Worker:
    worker = engine._worker
    assert worker is not None and worker.arbiter is not None
    return worker


class Quiet:
    """Counts the local wake-ups of an engine's arbiter by who sent them, so that a test can
    wait until the jobs done so far are reported and the arbiter waits idle with no
    wake-up pending: the subscriber then takes the next turn. To be made before the
    workers start."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.broker = engine._broker
        self.woken_by: Counter[str] = Counter()
        notify = self.broker.notify_local

        def counting() -> None:
            notify()
            name = threading.current_thread().name  # "notified-<role>[-<n>]", MainThread
            self.woken_by[name.split("-")[1] if "-" in name else name] += 1

        self.broker.notify_local = counting  # type: ignore[method-assign]

    def wait(self) -> None:
        """Wait until the subscriber listens, every job handed over was reported, and the
        arbiter waits idle with no wake-up pending (neither a report nor a job
        ending after a round that left free workers wakes it: ``Arbiter.wants_slot``)."""
        assert wait_until(
            lambda: self.woken_by["subscriber"] >= 1 and self._reported() and self._idle()
        )

    def _reported(self) -> bool:
        worker = worker_of(self.engine)
        return worker.unreported.none and self.engine._broker.running_jobs() == {}

    def _idle(self) -> bool:
        arbiter = worker_of(self.engine).arbiter
        assert arbiter is not None
        if self.broker._something_happened.is_set() or not arbiter._turn.acquire(False):
            return False
        try:
            return arbiter._idle_until is not None
        finally:
            arbiter._turn.release()


def fetching_threads(broker: RedisBroker) -> list[str]:
    """Names of the threads whose fetch took jobs, recorded from now on."""
    names: list[str] = []
    fetch = broker.get_jobs_from_queue

    def recording(queues: Any, max_jobs: int) -> list[Job]:
        jobs = fetch(queues, max_jobs)
        if jobs:
            names.append(threading.current_thread().name)
        return jobs

    broker.get_jobs_from_queue = recording  # type: ignore[method-assign]
    return names


def test_jobs_sent_to_an_idle_worker_are_fetched_by_the_subscriber_and_run_once(make_engine):
    engine, producer, quiet = make_engine()
    runs = Runs()
    engine.task(name="record")(runs.add)
    fetchers = fetching_threads(engine._broker)
    engine.start_workers(4, block=False)

    for value in range(10):
        quiet.wait()
        producer.enqueue_jobs([job("record", value)])
        runs.wait_for([value])

    assert fetchers == ["notified-subscriber"] * 10, fetchers
    assert quiet.woken_by["result"] == 0  # a report wakes no arbiter: nothing to do then
    engine.stop_workers()
    assert runs.counts == Counter(range(10))
    assert engine._broker.running_jobs() == {}


def test_a_lost_notification_is_made_up_by_the_arbiters_poll(make_engine):
    engine, producer, quiet = make_engine(idle_poll_interval=0.05)
    runs = Runs()
    engine.task(name="record")(runs.add)
    heard = threading.Event()
    engine._broker.relay_notification = heard.set  # type: ignore[method-assign]
    engine.start_workers(2, block=False)
    quiet.wait()

    producer.enqueue_jobs([job("record", 1)])

    assert heard.wait(WAIT_TIMEOUT)  # the subscriber heard it and dropped it
    runs.wait_for([1])
    engine.stop_workers()
    assert runs.counts == Counter([1])


def test_a_notification_while_every_thread_is_busy_runs_the_job_once_one_is_free(
    make_engine,
):
    engine, producer, quiet = make_engine()
    runs, started, release = Runs(), threading.Event(), threading.Event()
    engine.task(name="record")(runs.add)

    @engine.task(name="block")
    def block() -> None:
        started.set()
        assert release.wait(WAIT_TIMEOUT)

    relayed = threading.Event()
    relay = engine._broker.relay_notification

    def relay_and_note() -> None:
        relay()
        relayed.set()

    engine.start_workers(1, block=False)
    quiet.wait()
    producer.enqueue_jobs([job("block")])
    assert started.wait(WAIT_TIMEOUT)
    engine._broker.relay_notification = relay_and_note  # type: ignore[method-assign]

    producer.enqueue_jobs([job("record", 1)])
    assert relayed.wait(WAIT_TIMEOUT)  # heard while the only thread is busy
    assert runs.counts == Counter()
    assert producer.queue_lengths() == {"spinach": 1}  # not fetched beyond the free slots

    release.set()
    runs.wait_for([1])
    engine.stop_workers()
    assert runs.counts == Counter([1])


def test_a_stop_during_the_subscribers_fetch_loses_nothing(make_engine):
    engine, producer, quiet = make_engine()
    runs = Runs()
    engine.task(name="record")(runs.add)
    broker = engine._broker
    fetched, gate = threading.Event(), threading.Event()
    fetch = broker.get_jobs_from_queue

    def slow_fetch(queues: Any, max_jobs: int) -> list[Job]:
        jobs = fetch(queues, max_jobs)  # taken in Redis: running under this worker
        if jobs and threading.current_thread().name == "notified-subscriber":
            fetched.set()
            assert gate.wait(WAIT_TIMEOUT)  # the reply is on its way while the stop begins
        return jobs

    broker.get_jobs_from_queue = slow_fetch  # type: ignore[method-assign]
    engine.start_workers(2, block=False)
    worker = worker_of(engine)
    quiet.wait()
    producer.enqueue_jobs([job("record", 1)])
    assert fetched.wait(WAIT_TIMEOUT)

    stopper = threading.Thread(target=engine.stop_workers)
    stopper.start()
    assert worker.arbiter is not None
    worker.arbiter.join(WAIT_TIMEOUT)  # the stop is past the arbiter, waiting for the fetch
    assert not worker.arbiter.is_alive()
    gate.set()
    stopper.join(WAIT_TIMEOUT)
    assert not stopper.is_alive()

    assert producer.running_jobs() == {}
    ran, given_back = runs.counts[1], producer.queue_lengths().get("spinach", 0)
    assert (ran, given_back) in {(1, 0), (0, 1)}  # run by the stopping worker, or given back


def test_a_fetch_capped_below_the_free_threads_fetches_again_at_once(make_engine):
    """A fetch returning ``max_fetch_size`` jobs may have left more: the arbiter fetches
    again, though no report nor job end wakes it and one notification came for them all."""
    engine, producer, quiet = make_engine(max_fetch_size=2)
    runs = Runs()
    engine.task(name="record")(runs.add)
    engine.start_workers(4, block=False)
    quiet.wait()

    producer.enqueue_jobs([job("record", value) for value in range(7)])

    runs.wait_for(range(7))  # the idle poll (120 s) is not what fetched them
    engine.stop_workers()
    assert runs.counts == Counter(range(7))


def test_a_job_ending_while_a_round_fetches_for_free_workers_wakes_no_arbiter(make_engine):
    """A round with free workers fetches for them (and again at once if it fills them): a
    job ending during its fetch gives the arbiter nothing to do, so it is not woken."""
    engine, producer, quiet = make_engine()
    runs, holding, release, ended = Runs(), threading.Event(), threading.Event(), threading.Event()
    engine.task(name="record")(runs.add)

    @engine.task(name="hold")
    def hold() -> None:
        holding.set()
        assert release.wait(WAIT_TIMEOUT)

    engine.start_workers(2, block=False)
    worker, broker = worker_of(engine), engine._broker
    assert worker.pool is not None
    job_done = worker.pool._on_job_done

    def noting_the_end() -> None:
        job_done()
        ended.set()

    worker.pool._on_job_done = noting_the_end  # type: ignore[method-assign]
    fetch = broker.get_jobs_from_queue

    def fetch_while_a_job_ends(queues: Any, max_jobs: int) -> list[Job]:
        if not release.is_set():  # the fetch of "record", one worker free
            release.set()
            assert ended.wait(WAIT_TIMEOUT)
        return fetch(queues, max_jobs)

    quiet.wait()
    producer.enqueue_jobs([job("hold")])
    assert holding.wait(WAIT_TIMEOUT)
    broker.get_jobs_from_queue = fetch_while_a_job_ends  # type: ignore[method-assign]
    producer.enqueue_jobs([job("record", 1)])

    runs.wait_for([1])
    engine.stop_workers()
    assert quiet.woken_by["worker"] == 0
