"""Worker pools on their own, and the engine running them."""

import asyncio
import logging
import threading
from datetime import datetime, timezone

import pytest

from spinach import AsyncioWorkers, Engine, Job, JobStatus, MemoryBroker, ThreadWorkers
from spinach.context import current_job
from spinach.outage import Outage

from .helpers import WAIT_TIMEOUT, SignalRecorder


def job_of(func, *args):
    job = Job("t", "q", 0.0, 0, args)
    job.task_func = func
    return job


def collect(workers, count):
    return [workers.out_queue.get(timeout=WAIT_TIMEOUT) for _ in range(count)]


def test_thread_workers_run_jobs_and_hand_them_back():
    workers = ThreadWorkers(2, "pool")
    try:
        assert workers.available_slots == 2
        workers.submit_job(job_of(lambda x: x, 1))
        workers.submit_job(job_of(lambda: 1 / 0))
        done = {j.status for j in collect(workers, 2)}
    finally:
        workers.stop()
    assert done == {JobStatus.SUCCEEDED, JobStatus.FAILED}
    assert workers.available_slots == 2


def test_jobs_submitted_together_are_counted_at_once_and_held_in_order():
    started, release = threading.Event(), threading.Event()

    def blocking():
        started.set()
        release.wait(WAIT_TIMEOUT)

    workers = ThreadWorkers(1, "pool")
    try:
        first, second, third = job_of(blocking), job_of(lambda: 2), job_of(lambda: 3)
        workers.submit_jobs([first, second, third])
        assert workers.in_flight == 3 and workers.available_slots == -2
        assert started.wait(WAIT_TIMEOUT)
        assert workers.held_jobs() == [second, third]
        release.set()
        assert collect(workers, 3) == [first, second, third]
    finally:
        release.set()
        workers.stop()
    assert workers.in_flight == 0


def test_thread_workers_stop_returns_jobs_not_started():
    started, release = threading.Event(), threading.Event()

    def blocking():
        started.set()
        release.wait(WAIT_TIMEOUT)

    workers = ThreadWorkers(1, "pool")
    running, waiting = job_of(blocking), job_of(lambda: None)
    workers.submit_job(running)
    workers.submit_job(waiting)
    assert started.wait(WAIT_TIMEOUT)
    result = []
    stopper = threading.Thread(target=lambda: result.extend(workers.stop()))
    stopper.start()
    release.set()
    stopper.join()
    assert result == [waiting]
    assert collect(workers, 1) == [running]
    assert running.status is JobStatus.SUCCEEDED


def test_number_of_workers_is_checked():
    with pytest.raises(ValueError, match="number of workers"):
        ThreadWorkers(0, "pool")


def test_asyncio_workers_run_coroutines_concurrently():
    barrier = {}

    async def meet(count):
        # every job waits for the others: this only ends if they run at once
        event = barrier.setdefault("event", asyncio.Event())
        barrier["arrived"] = barrier.get("arrived", 0) + 1
        if barrier["arrived"] == count:
            event.set()
        await asyncio.wait_for(event.wait(), WAIT_TIMEOUT)

    workers = AsyncioWorkers(3, "aio")
    try:
        for _ in range(3):
            workers.submit_job(job_of(meet, 3))
        done = collect(workers, 3)
    finally:
        assert workers.stop() == []
    assert [j.status for j in done] == [JobStatus.SUCCEEDED] * 3


def test_asyncio_workers_run_plain_functions_off_the_loop():
    workers = AsyncioWorkers(1, "aio")
    try:
        job = job_of(lambda: threading.current_thread().name)
        workers.submit_job(job)
        (done,) = collect(workers, 1)
    finally:
        workers.stop()
    assert done.status is JobStatus.SUCCEEDED


def test_asyncio_worker_failure_is_the_jobs():
    async def fail():
        raise KeyError("nope")

    workers = AsyncioWorkers(1, "aio")
    try:
        workers.submit_job(job_of(fail))
        (done,) = collect(workers, 1)
    finally:
        workers.stop()
    assert done.status is JobStatus.FAILED


@pytest.mark.parametrize("workers_class", [ThreadWorkers, AsyncioWorkers])
def test_a_task_sees_its_own_job(workers_class):
    seen = []
    engine = Engine(MemoryBroker(), namespace=f"context-{workers_class.__name__}")

    @engine.task(name="sync")
    def sync_task():
        seen.append(current_job().id)

    @engine.task(name="coro")
    async def coro_task():
        seen.append(current_job().id)

    jobs = [engine.schedule("sync"), engine.schedule("coro")]
    engine.start_workers(number=2, workers_class=workers_class, stop_when_queue_empty=True)
    assert sorted(seen) == sorted(j.id for j in jobs)
    assert current_job() is None


def test_engine_with_asyncio_workers_retries_coroutines():
    engine = Engine(MemoryBroker(), namespace="aio-retry")
    recorder = SignalRecorder(engine.namespace)
    attempts = []

    @engine.task(name="flaky", max_retries=1)
    async def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            from spinach import RetryException

            raise RetryException("again", at=datetime.now(timezone.utc))  # due at once

    try:
        engine.schedule("flaky")
        engine.start_workers(number=2, workers_class=AsyncioWorkers, block=False)
        recorder.wait_for(lambda: len(recorder.of("job_finished")) == 2)
    finally:
        engine.stop_workers()
        recorder.close()
    assert recorder.of("job_finished")[-1].status == "SUCCEEDED"


def test_outage_backs_off_and_logs_once(caplog):
    now = [0.0]
    outage = Outage("thing", base_delay=1, max_delay=8, clock=lambda: now[0], rand=lambda: 1.0)
    with caplog.at_level(logging.DEBUG, "spinach.outage"):
        delays = [outage.failed(ConnectionError("down")) for _ in range(5)]
        now[0] = 42.0
        outage.succeeded()
        outage.succeeded()
    assert delays == [1, 2, 4, 8, 8]
    assert not outage.ongoing
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert messages == [
        "thing cannot reach the broker (ConnectionError: down); retrying with backoff",
        "thing reaches the broker again after 5 failed attempt(s) over 42.0 s",
    ]


@pytest.mark.parametrize("workers_class", [ThreadWorkers, AsyncioWorkers])
def test_a_plain_function_returning_a_coroutine_is_awaited(workers_class):
    ran = []

    async def body():
        ran.append("body")

    workers = workers_class(1, "returns-coroutine")
    try:
        workers.submit_job(job_of(lambda: body()))
        (done,) = collect(workers, 1)
    finally:
        workers.stop()
    assert (done.status, ran) == (JobStatus.SUCCEEDED, ["body"])


def _raise_in_a_frame_named_here() -> None:
    raise ValueError("flaky service")


def test_a_retry_is_logged_with_its_cause_and_traceback(caplog):
    """The cause goes with the retry's log record (not a stray ``NoneType: None``)."""
    from spinach.workers.base import advance_job_status

    job = Job("t", "q", 0.0, 3, ())
    try:
        _raise_in_a_frame_named_here()
    except ValueError as exc:
        err = exc
    with caplog.at_level(logging.WARNING, "spinach.worker"):
        advance_job_status("ns", job, 0.01, err, now=100.0)  # outside any except block

    assert job.status is JobStatus.WAITING and job.retries == 1
    (record,) = [r for r in caplog.records if "retry 1 of 3" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[1] is err
    assert "ValueError: flaky service" in record.getMessage()
    assert "_raise_in_a_frame_named_here" in caplog.text  # the traceback, formatted
    assert "NoneType: None" not in caplog.text


def test_a_retry_asked_for_is_logged_without_a_traceback(caplog):
    from spinach import RetryException
    from spinach.workers.base import advance_job_status

    job = Job("t", "q", 0.0, 3, ())
    with caplog.at_level(logging.WARNING, "spinach.worker"):
        advance_job_status("ns", job, 0.01, RetryException("later"), now=100.0)

    (record,) = [r for r in caplog.records if "retry 1 of 3" in r.getMessage()]
    assert not record.exc_info
    assert "Traceback" not in caplog.text and "NoneType: None" not in caplog.text
