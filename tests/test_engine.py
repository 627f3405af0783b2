"""The engine end to end on the MemoryBroker, through real worker threads."""

import queue
import threading
from datetime import datetime, timedelta, timezone

import pytest

from spinach import (
    AbortException,
    Batch,
    Engine,
    JobStatus,
    MemoryBroker,
    RetryException,
    Tasks,
    ThreadWorkers,
    signals,
)
from spinach.exc import InvalidJobSignatureError, UnknownTask, UnserializableArgumentError
from spinach.testing import FakeClock

from .helpers import WAIT_TIMEOUT, SignalRecorder, wait_until


@pytest.fixture
def clock():
    return FakeClock(start=1_700_000_000.0)


@pytest.fixture
def broker(clock):
    return MemoryBroker(clock=clock)


@pytest.fixture
def tasks():
    return Tasks()


@pytest.fixture
def engine(request, broker, tasks):
    spin = Engine(broker, namespace=f"test-{request.node.name}"[:60])
    spin.attach_tasks(tasks)
    yield spin
    spin.stop_workers()


@pytest.fixture
def recorder(engine):
    rec = SignalRecorder(engine.namespace)
    yield rec
    rec.close()


def advance(clock, broker, seconds):
    """Move time forward and wake the arbiter, as a broker notification would."""
    clock.advance(seconds)
    broker.notify_local()


def test_schedule_runs_job_with_its_arguments(engine, tasks, recorder):
    received = []

    @tasks.task(name="collect")
    def collect(a, b=0):
        received.append((a, b))

    job = engine.schedule("collect", 1, b=2)
    assert job.status is JobStatus.QUEUED
    engine.start_workers(number=2, block=False)
    recorder.wait_for_count("job_finished", 1)
    assert received == [(1, 2)]
    assert recorder.of("job_finished")[0].status == "SUCCEEDED"


def test_task_can_be_given_as_function_or_task(engine, tasks):
    @tasks.task(name="noop")
    def noop():
        pass

    assert engine.schedule(noop).task_name == "noop"
    assert engine.schedule(tasks.get("noop")).task_name == "noop"


def test_engine_task_decorator_registers_directly(engine, recorder):
    @engine.task(name="direct")
    def direct():
        return None

    engine.schedule(direct)
    engine.start_workers(number=1, block=False)
    recorder.wait_for_count("job_finished", 1, "direct")


def test_stop_when_queue_empty_blocks_until_all_ran(engine, tasks):
    ran = []
    tasks.add(ran.append, name="append")
    for i in range(20):
        engine.schedule("append", i)
    engine.start_workers(number=3, stop_when_queue_empty=True)
    assert sorted(ran) == list(range(20))


def test_stop_when_queue_empty_without_blocking(engine, tasks):
    tasks.add(lambda: None, name="noop")
    engine.schedule("noop")
    engine.start_workers(number=1, block=False, stop_when_queue_empty=True)
    assert engine.wait_until_stopped(WAIT_TIMEOUT)


def test_schedule_at_waits_for_its_time(engine, tasks, clock, broker, recorder):
    tasks.add(lambda: None, name="later")
    at = datetime.fromtimestamp(clock() + 60, tz=timezone.utc)
    job = engine.schedule_at("later", at)
    assert job.status is JobStatus.WAITING
    assert job.at == at
    engine.start_workers(number=1, block=False)
    advance(clock, broker, 59)
    assert broker.scheduled_jobs()[0].id == job.id  # not due yet
    advance(clock, broker, 1)
    recorder.wait_for_count("job_finished", 1)
    assert not broker.scheduled_jobs()


def test_naive_datetime_is_utc(engine, tasks, clock):
    tasks.add(lambda: None, name="later")
    naive = datetime(2030, 1, 1, 12, 0)
    job = engine.schedule_at("later", naive)
    assert job.at == naive.replace(tzinfo=timezone.utc)


def test_schedule_at_rejects_non_datetime(engine, tasks):
    tasks.add(lambda: None, name="later")
    with pytest.raises(TypeError, match="datetime"):
        engine.schedule_at("later", 12.5)


def test_schedule_batch_enqueues_every_job(engine, tasks, clock, broker):
    tasks.add(lambda x: None, name="one")
    batch = Batch()
    batch.schedule("one", 1)
    batch.schedule("one", 2)
    batch.schedule_at("one", datetime.fromtimestamp(clock() + 10, tz=timezone.utc), 3)
    jobs = engine.schedule_batch(batch)
    assert [j.task_args for j in jobs] == [(1,), (2,), (3,)]
    assert broker.queue_lengths() == {"spinach": 2}
    assert len(broker.scheduled_jobs()) == 1


def test_batch_with_an_unserializable_argument_schedules_nothing(engine, tasks, broker):
    tasks.add(lambda x: None, name="one")
    batch = Batch()
    batch.schedule("one", 1)
    batch.schedule("one", object())
    with pytest.raises(UnserializableArgumentError, match="argument 0 of task 'one'"):
        engine.schedule_batch(batch)
    assert broker.queue_lengths() == {}


def test_unserializable_keyword_argument_is_named(engine, tasks, broker):
    tasks.add(lambda when=None: None, name="one")
    with pytest.raises(TypeError, match=r"argument 'when' of task 'one'.*datetime"):
        engine.schedule("one", when=datetime.now())
    assert broker.queue_lengths() == {}


def test_arguments_that_do_not_fit_the_signature_are_refused(engine, tasks, broker):
    @tasks.task(name="add")
    def add(a, b):
        return a + b

    with pytest.raises(InvalidJobSignatureError, match="task 'add'"):
        engine.schedule("add", 1)
    with pytest.raises(InvalidJobSignatureError, match="unexpected keyword"):
        engine.schedule("add", 1, 2, c=3)
    batch = Batch()
    batch.schedule("add", 1, 2)
    batch.schedule("add")
    with pytest.raises(InvalidJobSignatureError):
        engine.schedule_batch(batch)
    assert broker.queue_lengths() == {}


def test_unknown_task_cannot_be_scheduled(engine):
    with pytest.raises(UnknownTask, match="unknown task 'nope'"):
        engine.schedule("nope")


def test_execute_returns_the_value(engine, tasks):
    tasks.add(lambda a, b: a + b, name="add")
    assert engine.execute("add", 2, 3) == 5


def test_execute_runs_a_coroutine_task(engine, tasks):
    async def double(x):
        return 2 * x

    tasks.add(double, name="double")
    assert engine.execute("double", 21) == 42


def test_failing_job_is_retried_then_fails(engine, tasks, clock, broker, recorder):
    attempts = []

    @tasks.task(name="flaky", max_retries=2)
    def flaky():
        attempts.append(1)
        raise ValueError("boom")

    signals.job_schedule_retry.connect(lambda s, **kw: advance(clock, broker, 3600), weak=False)
    try:
        engine.schedule("flaky")
        engine.start_workers(number=1, block=False)
        failed = recorder.wait_for_count("job_failed", 1)
    finally:
        signals.job_schedule_retry.receivers.clear()
    assert len(attempts) == 3
    assert [e.retries for e in recorder.of("job_schedule_retry")] == [1, 2]
    assert isinstance(failed[0].err, ValueError)
    assert failed[0].status == "FAILED"


def test_retry_exception_chooses_the_time(engine, tasks, clock, broker, recorder):
    calls = []
    at = datetime.fromtimestamp(clock() + 30, tz=timezone.utc)

    @tasks.task(name="later", max_retries=1)
    def later():
        calls.append(clock())
        if len(calls) == 1:
            raise RetryException("not yet", at=at)

    engine.schedule("later")
    engine.start_workers(number=1, block=False)
    assert wait_until(lambda: len(broker.scheduled_jobs()) == 1)
    (job,) = broker.scheduled_jobs()
    assert job.at == at and job.retries == 1
    advance(clock, broker, 30)
    recorder.wait_for_count("job_finished", 2)
    assert recorder.of("job_finished")[-1].status == "SUCCEEDED"


def test_retry_exception_respects_max_retries(engine, tasks, recorder):
    @tasks.task(name="never", max_retries=0)
    def never():
        raise RetryException("again")

    engine.schedule("never")
    engine.start_workers(number=1, block=False)
    recorder.wait_for_count("job_failed", 1)
    assert not recorder.of("job_schedule_retry")


def test_abort_exception_fails_at_once(engine, tasks, recorder):
    @tasks.task(name="abort", max_retries=5)
    def abort():
        raise AbortException("no point")

    engine.schedule("abort")
    engine.start_workers(number=1, block=False)
    (failed,) = recorder.wait_for_count("job_failed", 1)
    assert isinstance(failed.err, AbortException)
    assert not recorder.of("job_schedule_retry")


def test_periodic_task_runs_once_per_period(engine, tasks, clock, broker, recorder):
    tasks.add(lambda: None, name="tick", periodicity=timedelta(seconds=10))
    engine.start_workers(number=2, block=False)
    recorder.wait_for_count("job_finished", 1, "tick")
    advance(clock, broker, 10)
    recorder.wait_for_count("job_finished", 2, "tick")
    advance(clock, broker, 35)  # three periods missed: one run, no burst
    recorder.wait_for_count("job_finished", 3, "tick")
    assert [(t, name) for t, name in broker.inspect_periodic_tasks()] == [(1_700_000_050.0, "tick")]


def test_max_concurrency_limits_parallel_jobs(engine, tasks, recorder):
    lock = threading.Lock()
    running = {"now": 0, "max": 0}

    @tasks.task(name="limited", max_concurrency=1)
    def limited():
        with lock:
            running["now"] += 1
            running["max"] = max(running["max"], running["now"])
        with lock:
            running["now"] -= 1

    for _ in range(10):
        engine.schedule("limited")
    engine.start_workers(number=4, block=False)
    recorder.wait_for_count("job_finished", 10)
    assert running["max"] == 1


def test_max_concurrency_holds_across_threads_while_a_job_runs(engine, tasks, recorder):
    release = threading.Event()
    tasks.add(lambda: release.wait(WAIT_TIMEOUT), name="slow", max_concurrency=1)
    tasks.add(lambda: None, name="fast")
    engine.schedule("slow")
    engine.schedule("slow")
    engine.schedule("fast")
    engine.start_workers(number=3, block=False)
    recorder.wait_for_count("job_finished", 1, "fast")  # fetched past the waiting 'slow'
    assert len(recorder.of("job_started", "slow")) == 1
    release.set()
    recorder.wait_for_count("job_finished", 2, "slow")


def test_worker_consumes_the_queues_it_is_given(engine, tasks, broker, recorder):
    tasks.add(lambda: None, name="a", queue="a")
    tasks.add(lambda: None, name="b", queue="b")
    tasks.add(lambda: None, name="c", queue="c")
    for name in "abc":
        engine.schedule(name)
    engine.start_workers(number=1, queue=["b", "a"], block=False)
    recorder.wait_for_count("job_finished", 2)
    assert [e.task_name for e in recorder.of("job_finished")] == ["b", "a"]
    assert broker.queue_lengths() == {"c": 1}


def test_unknown_task_in_queue_goes_to_dead_letters(engine, tasks, broker, recorder):
    other = Engine(broker.peer(), namespace=engine.namespace)
    other.task(lambda: None, name="only-elsewhere")
    tasks.add(lambda: None, name="known")
    other.schedule("only-elsewhere")
    engine.schedule("known")
    dead_lettered = []

    def on_dead_letter(sender, job, reason):
        dead_lettered.append((job.task_name, reason))

    signals.job_dead_lettered.connect(on_dead_letter, sender=engine.namespace)
    try:
        engine.start_workers(number=1, stop_when_queue_empty=True)
    finally:
        signals.job_dead_lettered.disconnect(on_dead_letter)
    assert len(recorder.of("job_finished", "known")) == 1
    assert [name for name, _ in dead_lettered] == ["only-elsewhere"]
    (letter,) = broker.list_dead_letters()
    assert "unknown task 'only-elsewhere'" in letter.reason
    assert not any(broker.running_jobs().values())


def test_signals_are_sent_with_the_namespace(engine, tasks):
    seen = []
    tasks.add(lambda: None, name="noop")

    @signals.job_started.connect_via(engine.namespace)
    def mine(sender, job, **kwargs):
        seen.append(("mine", sender, job.task_name))

    @signals.job_started.connect_via("someone-else")
    def theirs(sender, job, **kwargs):
        seen.append(("theirs", sender))

    try:
        engine.schedule("noop")
        engine.start_workers(number=1, stop_when_queue_empty=True)
    finally:
        signals.job_started.disconnect(mine)
        signals.job_started.disconnect(theirs)
    assert seen == [("mine", engine.namespace, "noop")]


def test_a_failing_receiver_does_not_break_the_worker(engine, tasks, recorder, caplog):
    tasks.add(lambda: None, name="noop")

    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    signals.job_started.connect(broken, sender=engine.namespace)
    try:
        engine.schedule("noop")
        engine.schedule("noop")
        engine.start_workers(number=1, block=False)
        recorder.wait_for_count("job_finished", 2)
    finally:
        signals.job_started.disconnect(broken)
    assert "receiver bug" in caplog.text


def test_worker_signals(engine):
    names = []

    def on_start(sender, worker_name):
        names.append(("started", worker_name))

    def on_end(sender, worker_name):
        names.append(("terminated", worker_name))

    signals.worker_started.connect(on_start, sender=engine.namespace)
    signals.worker_terminated.connect(on_end, sender=engine.namespace)
    try:
        engine.start_workers(number=2, stop_when_queue_empty=True)
    finally:
        signals.worker_started.disconnect(on_start)
        signals.worker_terminated.disconnect(on_end)
    assert sorted(names) == [
        ("started", "worker-1"),
        ("started", "worker-2"),
        ("terminated", "worker-1"),
        ("terminated", "worker-2"),
    ]


def test_start_workers_twice_is_refused(engine):
    engine.start_workers(number=1, block=False)
    with pytest.raises(RuntimeError, match="already run"):
        engine.start_workers(number=1, block=False)


def test_engine_can_restart_after_stopping(engine, tasks, recorder):
    tasks.add(lambda: None, name="noop")
    engine.start_workers(number=1, block=False)
    engine.stop_workers()
    engine.schedule("noop")
    engine.start_workers(number=1, block=False)
    recorder.wait_for_count("job_finished", 1)


def test_graceful_stop_lets_running_jobs_finish(engine, tasks, broker, recorder):
    started, release, done = threading.Event(), threading.Event(), []

    def slow():
        started.set()
        release.wait(WAIT_TIMEOUT)
        done.append(1)

    tasks.add(slow, name="slow")
    engine.schedule("slow")
    engine.start_workers(number=1, block=False)
    assert started.wait(WAIT_TIMEOUT)
    stopper = threading.Thread(target=engine.stop_workers)
    stopper.start()
    release.set()
    stopper.join()
    assert done == [1]
    assert not any(broker.running_jobs().values())
    assert broker.workers() == []


def test_dead_workers_jobs_are_recovered(engine, tasks, clock, broker, recorder):
    from spinach.brokers.base import WorkerInfo

    tasks.add(lambda: None, name="safe", max_retries=3)
    tasks.add(lambda: None, name="once")
    dead = broker.peer()
    dead.register_worker(WorkerInfo(id=dead.worker_id))
    engine.schedule("safe")
    engine.schedule("once")
    assert len(dead.get_jobs_from_queue("spinach", 10)) == 2
    clock.advance(broker.dead_worker_threshold + 1)
    engine.start_workers(number=1, block=False)
    (finished,) = recorder.wait_for_count("job_finished", 1)
    assert (finished.task_name, finished.retries) == ("safe", 1)
    (failed,) = recorder.wait_for_count("job_failed", 1)
    assert failed.task_name == "once"
    assert type(failed.err).__name__ == "WorkerLostError"


class FlakyBroker(MemoryBroker):
    """A MemoryBroker whose reports fail a few times, as during a Redis outage."""

    failures_left = 3

    def remove_jobs_from_running(self, jobs):
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("broker unreachable")
        super().remove_jobs_from_running(jobs)


def test_results_are_reported_after_an_outage(clock, caplog):
    broker = FlakyBroker(clock=clock)
    spin = Engine(broker, namespace="outage")
    spin.task(lambda: None, name="noop")
    spin.schedule("noop")
    spin.start_workers(number=1, stop_when_queue_empty=True)
    assert broker.failures_left == 0
    assert not any(broker.running_jobs().values())
    warnings = [r for r in caplog.records if "cannot reach the broker" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not per retry


class ReportRecordingBroker(MemoryBroker):
    """A MemoryBroker recording the job ids of each report of ended jobs."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.reports = []

    def remove_jobs_from_running(self, jobs):
        self.reports.append([job.id for job in jobs])
        super().remove_jobs_from_running(jobs)


def test_a_job_ending_alone_is_reported_at_once(clock):
    broker = ReportRecordingBroker(clock=clock)
    spin = Engine(broker, namespace="alone")
    spin.report_gather_delay = 3600.0  # not waited for: nothing else runs
    spin.task(lambda: None, name="noop")
    job = spin.schedule("noop")
    spin.start_workers(number=2, block=False)
    try:
        assert wait_until(lambda: broker.reports == [[job.id]])
    finally:
        spin.stop_workers()


class GatherSpyQueue(queue.SimpleQueue):
    """An out_queue telling when the result notifier waits, with a timeout, for more
    finished jobs to gather (it took the first one and saw others running)."""

    def __init__(self):
        super().__init__()
        self.gathering = threading.Event()

    def get(self, block=True, timeout=None):
        if block and timeout is not None:
            self.gathering.set()
        return super().get(block, timeout)


class GatherSpyWorkers(ThreadWorkers):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.out_queue = GatherSpyQueue()


def test_jobs_ending_close_together_are_reported_together(clock):
    broker = ReportRecordingBroker(clock=clock)
    spin = Engine(broker, namespace="together")
    spin.report_gather_delay = 3600.0  # cut short by the other job's end
    release = threading.Event()
    spin.task(lambda: None, name="quick")
    spin.task(lambda: release.wait(WAIT_TIMEOUT), name="slow")
    slow, quick = spin.schedule("slow"), spin.schedule("quick")
    spin.start_workers(number=2, block=False, workers_class=GatherSpyWorkers)
    try:
        # quick ended and the notifier waits for slow, which is still running: end it
        assert spin.worker.pool.out_queue.gathering.wait(WAIT_TIMEOUT)
        release.set()
        assert wait_until(lambda: broker.reports != [])
    finally:
        spin.stop_workers()

    assert broker.reports == [[quick.id, slow.id]]


class FlakyFetchBroker(MemoryBroker):
    """A MemoryBroker whose fetches and idle checks fail for a while."""

    failures_left = 4

    def _maybe_fail(self):
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("broker unreachable")

    def get_jobs_from_queue(self, queue, max_jobs):
        self._maybe_fail()
        return super().get_jobs_from_queue(queue, max_jobs)

    def next_future_job_delta(self):
        self._maybe_fail()
        return super().next_future_job_delta()

    def is_queue_empty(self, queue):
        self._maybe_fail()
        return super().is_queue_empty(queue)


def test_the_arbiter_keeps_consuming_after_an_outage(clock):
    broker = FlakyFetchBroker(clock=clock)
    spin = Engine(broker, namespace="arbiter-outage")
    recorder = SignalRecorder(spin.namespace)
    spin.task(lambda: None, name="noop")
    try:
        spin.start_workers(number=1, block=False)
        spin.schedule("noop")
        recorder.wait_for_count("job_finished", 1)
        spin.schedule("noop")  # and still consuming afterwards
        recorder.wait_for_count("job_finished", 2)
    finally:
        spin.stop_workers()
        recorder.close()
    assert broker.failures_left == 0


def test_defer_exception_runs_the_job_later_without_counting_an_attempt(
    engine, tasks, clock, broker, recorder
):
    from spinach import DeferException

    calls = []
    at = datetime.fromtimestamp(clock() + 30, tz=timezone.utc)

    @tasks.task(name="not-yet", max_retries=0)  # deferring is not retrying
    def not_yet():
        calls.append(1)
        if len(calls) < 3:
            raise DeferException("rate limit reached", at=at)

    engine.schedule("not-yet")
    engine.start_workers(number=1, block=False)
    assert wait_until(lambda: len(broker.scheduled_jobs()) == 1)
    (job,) = broker.scheduled_jobs()
    assert (job.at, job.retries) == (at, 0)
    advance(clock, broker, 30)
    recorder.wait_for_count("job_finished", 3)
    assert [e.status for e in recorder.of("job_finished")][-1] == "SUCCEEDED"
    assert [e.retries for e in recorder.of("job_started")] == [0, 0, 0]
    assert not recorder.of("job_schedule_retry") and not recorder.of("job_failed")


def test_an_engine_that_never_started_is_stopped(engine):
    assert engine.wait_until_stopped(0)
    engine.stop_workers()  # nothing to stop: no error


def test_stop_workers_called_by_a_task_stops_once_its_job_is_reported(
    engine, tasks, broker, recorder
):
    tasks.add(engine.stop_workers, name="stopper")
    engine.schedule("stopper")

    engine.start_workers(number=2, block=False)

    assert engine.wait_until_stopped(WAIT_TIMEOUT)
    assert [e.status for e in recorder.of("job_finished")] == ["SUCCEEDED"]
    assert broker.running_jobs() == {}


def test_a_concurrency_limit_removed_from_the_code_no_longer_applies(broker, request):
    namespace = f"limit-{request.node.name}"[:60]
    before = Engine(broker, namespace=namespace)
    before.task(name="job", max_concurrency=1)(lambda: None)
    before.start_workers(number=1, block=False)
    before.stop_workers()
    together = threading.Barrier(3, timeout=WAIT_TIMEOUT)  # breaks unless all 3 run at once
    after = Engine(broker, namespace=namespace)
    after.task(name="job")(together.wait)
    for _ in range(3):
        after.schedule("job")

    recorder = SignalRecorder(namespace)
    after.start_workers(number=3, block=False)
    try:
        finished = recorder.wait_for_count("job_finished", 3)
    finally:
        after.stop_workers()
        recorder.close()
    assert [e.status for e in finished] == ["SUCCEEDED"] * 3


def test_a_retry_that_cannot_be_serialized_fails_and_holds_up_nothing(
    engine, tasks, broker, recorder, caplog
):
    @tasks.task(name="spoils", max_retries=3)
    def spoils(items):
        items.append(object())  # the retry would carry it: JSON cannot
        raise ValueError("try again")

    tasks.add(lambda: None, name="after")
    engine.schedule("spoils", [])
    engine.start_workers(number=1, block=False)
    (failed,) = recorder.wait_for_count("job_failed", 1)
    engine.schedule("after")

    recorder.wait_for_count("job_finished", 2)
    assert wait_until(lambda: broker.running_jobs() == {})
    assert (failed.task_name, failed.status) == ("spoils", "FAILED")
    assert isinstance(failed.err, UnserializableArgumentError)
    assert "cannot be retried, failing it" in caplog.text
