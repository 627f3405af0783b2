"""Prefetch (``spinach.workers.prefetch``): a thread pool holds a few jobs beyond its threads
while its jobs are short, and none once they are long; held jobs are fetched jobs (marked
running), run once, and a stop gives them back unstarted."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from spinach import AsyncioWorkers, Engine, Job, ThreadWorkers
from spinach.workers.prefetch import Prefetch, PrefetchSettings

from .helpers import WAIT_TIMEOUT, wait_until

#: Long enough that no poll, heartbeat or dead-worker check moves a job in a test.
QUIET = dict(heartbeat_interval=60.0, dead_worker_threshold=300.0, idle_poll_interval=120.0)


def test_a_pool_that_ran_nothing_holds_nothing():
    prefetch = Prefetch(PrefetchSettings(), threads=4)
    assert (prefetch.limit, prefetch.mean_run_time, prefetch.extra) == (4, math.inf, 0)


def test_short_jobs_switch_it_on_and_long_ones_off():
    prefetch = Prefetch(PrefetchSettings(short_job=0.01, weight=0.5), threads=4)
    prefetch.observe(0.001)
    assert (prefetch.extra, prefetch.refill_at) == (4, 2)
    for _ in range(5):
        prefetch.observe(0.1)
    assert (prefetch.extra, prefetch.refill_at) == (0, 1)


def test_a_long_job_counts_as_ten_short_jobs_at_most():
    prefetch = Prefetch(PrefetchSettings(short_job=0.01, weight=0.5), threads=2)
    prefetch.observe(60.0)  # the first job of a process: connections, imports
    assert prefetch.mean_run_time == pytest.approx(0.1)
    for _ in range(4):
        prefetch.observe(0.0)
    assert prefetch.extra == 2


def test_an_explicit_limit_replaces_the_number_of_threads():
    prefetch = Prefetch(PrefetchSettings(limit=3), threads=8)
    prefetch.observe(0.0)
    assert (prefetch.extra, prefetch.refill_at) == (3, 1)


@pytest.mark.parametrize("limit", [-1, 1.5, "2"])
def test_a_bad_limit_is_refused(limit):
    with pytest.raises(ValueError, match="prefetch limit"):
        PrefetchSettings(limit=limit)


def test_a_bad_weight_is_refused():
    with pytest.raises(ValueError, match="prefetch weight"):
        PrefetchSettings(weight=0)


def blocked_job(release: threading.Event) -> Job:
    job = Job("t", "q", 0.0, 0, ())
    job.task_func = lambda: release.wait(WAIT_TIMEOUT)
    return job


def test_busy_threads_fetch_again_only_once_the_held_jobs_ran_low():
    release = threading.Event()
    pool = ThreadWorkers(2, "pool")
    pool.prefetch = Prefetch(PrefetchSettings(limit=4), threads=2)
    pool.prefetch.observe(0.0)
    try:
        assert pool.slots_to_fetch() == 6  # a thread is free: every slot
        for expected in (5, 4, 3, 2, 0):  # threads busy: only while 2 slots or more are free
            pool.submit_job(blocked_job(release))
            assert pool.slots_to_fetch() == expected
        assert pool.available_slots == 1
    finally:
        release.set()
        pool.stop()


def test_pools_that_start_every_job_at_once_hold_none():
    assert ThreadWorkers.holds_jobs and not AsyncioWorkers.holds_jobs


class Gate:
    """The ``gated`` task: each run is counted, and waits until the gate opens."""

    def __init__(self) -> None:
        self.runs: Counter[int] = Counter()
        self.open = threading.Event()

    def run(self, value: int) -> None:
        self.runs[value] += 1
        if value >= 0:
            self.open.wait(WAIT_TIMEOUT)


@pytest.fixture
def gated_engine(redis_broker_factory) -> Iterator[tuple[Engine, Gate]]:
    gate = Gate()
    engine = Engine(redis_broker_factory(namespace="prefetch", **QUIET), "prefetch")
    engine.task(name="gated")(gate.run)
    yield engine, gate
    gate.open.set()
    engine.stop_workers()


def run_short_jobs(engine: Engine, gate: Gate, count: int = 5) -> None:
    """Jobs that end at once (negative values do not wait): the mean run time is short."""
    for value in range(-count, 0):
        engine.schedule("gated", value)
    assert wait_until(lambda: all(gate.runs[v] for v in range(-count, 0)))


def test_a_busy_worker_holds_jobs_while_its_jobs_are_short(gated_engine):
    engine, gate = gated_engine
    engine.start_workers(number=2, block=False)
    run_short_jobs(engine, gate)
    for value in range(6):
        engine.schedule("gated", value)
    broker = engine._broker
    # 2 running, 2 held (as many as threads), all 4 marked running; 2 left in the queue
    assert wait_until(lambda: sum(map(len, broker.running_jobs().values())) == 4)
    assert broker.queue_lengths() == {"spinach": 2}
    assert wait_until(lambda: sum(gate.runs[v] for v in range(6)) == 2)
    gate.open.set()
    assert wait_until(lambda: all(gate.runs[v] for v in range(6)))
    assert all(gate.runs[v] == 1 for v in range(6))


def test_a_stop_gives_the_held_jobs_back_unstarted(gated_engine):
    engine, gate = gated_engine
    engine.start_workers(number=1, block=False)
    run_short_jobs(engine, gate)
    engine.schedule("gated", 0)
    engine.schedule("gated", 1)
    broker = engine._broker
    pool = engine._worker.pool
    # both in the pool, the first started (running for the broker is not enough: a job
    # handed over with its wake-up is running there before the worker gets it)
    assert wait_until(lambda: pool.in_flight == 2 and gate.runs[0] == 1)
    stopper = threading.Thread(target=engine.stop_workers)
    stopper.start()
    assert wait_until(lambda: pool.in_flight == 1)  # the held job is out of the pool
    gate.open.set()
    stopper.join(WAIT_TIMEOUT)
    assert not stopper.is_alive()
    assert (gate.runs[0], gate.runs[1]) == (1, 0)
    assert broker.queue_lengths() == {"spinach": 1} and broker.running_jobs() == {}


def test_without_prefetch_a_busy_worker_takes_one_job_per_thread(gated_engine):
    engine, gate = gated_engine
    engine.prefetch = PrefetchSettings(limit=0)
    engine.start_workers(number=2, block=False)
    run_short_jobs(engine, gate)
    for value in range(4):
        engine.schedule("gated", value)
    broker = engine._broker
    assert wait_until(lambda: sum(gate.runs[v] for v in range(4)) == 2)
    assert broker.queue_lengths() == {"spinach": 2}
    assert sum(map(len, broker.running_jobs().values())) == 2
