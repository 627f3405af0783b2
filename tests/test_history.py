"""The history of finished jobs and their captured log lines, on both brokers."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone

import pytest

from spinach import Engine, MemoryBroker, RetryException, Tasks, current_job
from spinach.brokers.base import WorkerInfo
from spinach.history import HistoryRecord, HistorySettings, args_preview, counts_by_queue
from spinach.job import Job
from spinach.job_codec import COMPACT_JSON
from spinach.job_logs import JobLogCapture
from spinach.testing import FakeClock

from .helpers import wait_until

task_logger = logging.getLogger("tests.history.task")


def _record(job_id: str, finished_at: float, queue: str = "q") -> HistoryRecord:
    return HistoryRecord(
        id=job_id, task="t", queue=queue, status="succeeded", attempts=1, scheduled_at=0.0,
        started_at=finished_at, finished_at=finished_at, duration=0.0, args="[[], {}]",
    )  # fmt: skip


@pytest.fixture(params=["memory", "redis"])
def make_broker(request):
    """A factory of brokers of the parametrized kind, with a clock."""
    if request.param == "memory":
        return lambda clock: MemoryBroker(clock=clock)
    factory = request.getfixturevalue("redis_broker_factory")
    return lambda clock: factory(clock=clock)


def test_history_is_newest_first_and_trimmed_to_size_and_retention(make_broker):
    clock = FakeClock(1_000_000.0)
    broker = make_broker(clock)
    now = clock()
    broker.record_history([_record(f"j{i}", now - 10 + i) for i in range(5)], 3600, 3)
    assert [r.id for r in broker.history()] == ["j4", "j3", "j2"]
    assert broker.history_record("j1") is None
    assert broker.history_record("j3") == _record("j3", now - 7)
    assert [r.id for r in broker.history(offset=1, limit=1)] == ["j3"]
    clock.advance(3600 - 7)  # j2 is past its retention, j3 and j4 not yet
    broker.record_history([_record("j5", clock())], 3600, 3)
    assert [r.id for r in broker.history()] == ["j5", "j4", "j3"]
    clock.advance(1)  # j3 is past it now
    broker.record_history([_record("j6", clock())], 3600, 10)
    assert [r.id for r in broker.history()] == ["j6", "j5", "j4"]


def test_finished_counts_per_queue_and_minute(make_broker):
    clock = FakeClock(60 * 1_000_000.0)  # the start of a minute
    broker = make_broker(clock)
    now = clock()
    records = [_record("a", now - 1, "low"), _record("b", now + 1), _record("c", now + 2)]
    broker.record_history(records, 3600, 100)
    broker.record_history(records[1:], 3600, 100)  # recorded twice: counted twice
    assert broker.finished_counts(3) == {"low": [0, 1, 0], "q": [0, 0, 4]}


def test_counts_by_queue_leaves_out_old_and_future_minutes():
    counts = {"10 a": 1, "11 a": 2, "12 b": 3, "13 a": 9, "7 a": 5}
    assert counts_by_queue(counts, 12 * 60 + 30, 3) == {"a": [1, 2, 0], "b": [0, 0, 3]}


def test_flush_deletes_the_history(make_broker):
    broker = make_broker(FakeClock())
    broker.record_history([_record("a", broker.now())], 3600, 10)
    broker.flush()
    assert broker.history() == []
    assert broker.finished_counts(5) == {}


def test_queue_jobs_pages_through_a_queue_and_skips_bad_payloads(make_broker):
    broker = make_broker(FakeClock())
    jobs = [Job("t", "q", broker.now(), 0, [i]) for i in range(5)]
    broker.enqueue_jobs(jobs[:2])
    broker.push_raw("q", "not json")
    broker.enqueue_jobs(jobs[2:])
    assert [j.task_args for j in broker.queue_jobs("q", 0, 3)] == [(0,), (1,)]
    assert [j.task_args for j in broker.queue_jobs("q", 3, 10)] == [(2,), (3,), (4,)]
    assert broker.queue_jobs("other") == []


def test_running_since_is_the_fetch_time(make_broker):
    clock = FakeClock(1_000_000.0)
    broker = make_broker(clock)
    broker.register_worker(WorkerInfo(id=broker.worker_id))
    job = Job("t", "q", clock(), 0)
    broker.enqueue_jobs([job])
    clock.advance(5)
    assert len(broker.get_jobs_from_queue("q", 1)) == 1
    assert broker.running_since() == {job.id: pytest.approx(clock())}


# -- through a worker ----------------------------------------------------------------------


def _engine(broker, **settings) -> tuple[Engine, Tasks, threading.Event]:
    tasks = Tasks()
    release = threading.Event()

    @tasks.task(name="chatty")
    def chatty(n: int) -> None:
        for i in range(n):
            task_logger.warning("line %d of <%s>", i, "x")

    @tasks.task(name="broken", max_retries=1)
    def broken() -> None:
        job = current_job()
        if job is not None and job.retries == 0:  # a retry due at once
            raise RetryException("again", at=datetime.now(timezone.utc))
        task_logger.warning("about to fail")
        raise ValueError("bad input")

    engine = Engine(broker, namespace="history")
    engine.attach_tasks(tasks)
    engine.history = HistorySettings(**settings)
    return engine, tasks, release


def _run_until_recorded(engine: Engine, count: int) -> list[HistoryRecord]:
    broker = engine.broker
    engine.start_workers(number=2, block=False)
    try:
        assert wait_until(lambda: len(broker.history()) >= count)
    finally:
        engine.stop_workers()
    return broker.history()


def test_worker_records_successes_failures_and_log_lines(make_broker):
    engine, _, _ = _engine(make_broker(time.time), log_lines=3, log_bytes=10_000)
    ok = engine.schedule("chatty", 5)
    bad = engine.schedule("broken")
    records = {r.id: r for r in _run_until_recorded(engine, 2)}
    assert records[ok.id].status == "succeeded"
    assert records[ok.id].args == "[[5], {}]"
    assert records[ok.id].logs_truncated
    assert [line.split(": ", 1)[1] for line in records[ok.id].logs] == [
        "line 0 of <x>", "line 1 of <x>", "line 2 of <x>",
    ]  # fmt: skip
    assert records[bad.id].status == "failed"
    assert records[bad.id].attempts == 2
    assert records[bad.id].error == "ValueError: bad input"
    assert records[bad.id].logs[-1].endswith("about to fail")


def test_log_capture_is_bounded_in_bytes_and_off_switch(make_broker):
    engine, _, _ = _engine(MemoryBroker(), log_bytes=120)
    job = engine.schedule("chatty", 10)
    (record,) = _run_until_recorded(engine, 1)
    assert record.id == job.id and record.logs_truncated
    assert 0 < sum(len(line) for line in record.logs) <= 120
    engine, _, _ = _engine(MemoryBroker(), capture_logs=False)
    engine.schedule("chatty", 2)
    (record,) = _run_until_recorded(engine, 1)
    assert record.logs == [] and not record.logs_truncated
    assert not any(isinstance(h, JobLogCapture) for h in logging.getLogger().handlers)


def _held(engine: Engine) -> int:
    """How many records the engine's result notifier holds, not written yet."""
    worker = engine._worker
    assert worker is not None and worker.notifier is not None
    return len(worker.notifier._history_records)


def test_records_wait_for_their_delay_or_a_full_batch_and_the_stop_writes_the_rest():
    broker = MemoryBroker()
    engine, _, _ = _engine(broker, write_delay=3600.0, write_batch=3)
    engine.start_workers(number=1, block=False)
    try:
        engine.schedule("chatty", 0)
        assert wait_until(lambda: _held(engine) == 1)
        assert broker.history() == []  # held: neither its delay nor a batch is over
        engine.schedule("chatty", 0)
        engine.schedule("chatty", 0)
        assert wait_until(lambda: len(broker.history()) == 3)  # a full batch
        engine.schedule("chatty", 0)
        assert wait_until(lambda: _held(engine) == 1)
        assert len(broker.history()) == 3
    finally:
        engine.stop_workers()
    assert len(broker.history()) == 4  # the stop wrote the one held


def test_a_record_held_is_written_once_its_delay_is_over(make_broker):
    engine, _, _ = _engine(make_broker(time.time), write_delay=0.05, write_batch=100)
    job = engine.schedule("chatty", 0)
    engine.start_workers(number=1, block=False)
    try:
        assert wait_until(lambda: [r.id for r in engine.broker.history()] == [job.id])
        assert _held(engine) == 0
    finally:
        engine.stop_workers()


def test_history_off_records_nothing():
    engine, _, _ = _engine(MemoryBroker(), enabled=False)
    engine.schedule("chatty", 1)
    engine.start_workers(number=1, block=False, stop_when_queue_empty=True)
    assert engine.wait_until_stopped(15)
    assert engine.broker.history() == []


def test_capture_ignores_records_outside_jobs():
    capture = JobLogCapture(10, 1000)
    capture.install()
    try:
        task_logger.warning("not in a job")
    finally:
        capture.uninstall()
    assert capture.pop("anything") == ([], False)


def test_each_engine_of_a_process_captures_its_own_jobs_lines():
    first, _, _ = _engine(MemoryBroker())
    second, _, _ = _engine(MemoryBroker())
    second.namespace = "history2"
    first.schedule("chatty", 1)
    second.schedule("chatty", 2)
    second.start_workers(number=1, block=False)
    try:
        (mine,) = _run_until_recorded(first, 1)
        assert wait_until(lambda: len(second.broker.history()) == 1)
    finally:
        second.stop_workers()
    (theirs,) = second.broker.history()
    assert len(mine.logs) == 1 and len(theirs.logs) == 2
    recorders = [e.worker.history for e in (first, second) if e.worker is not None]
    assert [r.logs._held for r in recorders if r is not None and r.logs] == [{}, {}]


def test_coroutine_jobs_of_asyncio_workers_have_their_own_lines():
    from spinach import AsyncioWorkers

    tasks = Tasks()

    @tasks.task(name="co")
    async def co(n: int) -> None:
        task_logger.warning("coroutine %d", n)

    engine = Engine(MemoryBroker(), namespace="history-aio")
    engine.attach_tasks(tasks)
    jobs = [engine.schedule("co", n) for n in range(3)]
    engine.start_workers(number=3, block=False, workers_class=AsyncioWorkers)
    try:
        assert wait_until(lambda: len(engine.broker.history()) == 3)
    finally:
        engine.stop_workers()
    for n, job in enumerate(jobs):
        record = engine.broker.history_record(job.id)
        assert record is not None and record.status == "succeeded"
        lines = [line for line in record.logs if task_logger.name in line]  # its own only
        assert [line.rsplit(": ", 1)[1] for line in lines] == [f"coroutine {n}"]


def test_the_preview_shows_the_texts_a_job_gives_in_place_of_its_arguments():
    job = Job("t", "q", 0.0, 0, task_args=("4111 1111", "123"), task_kwargs={"pin": 42})
    assert args_preview(job) == '[["4111 1111", "123"], {"pin": 42}]'
    job.meta = {"argsrepr": "(<card>, <cvv>)"}
    assert args_preview(job) == '["(<card>, <cvv>)", {"pin": 42}]'
    job.meta = {"argsrepr": "(<card>, <cvv>)", "headers": {"kwargsrepr": "{'pin': '<pin>'}"}}
    assert args_preview(job) == "[\"(<card>, <cvv>)\", \"{'pin': '<pin>'}\"]"
    job.meta = {"argsrepr": 5, "headers": "not a dict"}  # not texts: the arguments are shown
    assert args_preview(job) == '[["4111 1111", "123"], {"pin": 42}]'


def test_a_job_without_arguments_is_previewed_as_an_empty_call():
    job = Job("t", "q", 0.0, 0)
    assert args_preview(job) == "[[], {}]"
    assert args_preview(job, limit=6) == "[[]..."
    job.meta = {"headers": {"argsrepr": "()"}}  # a text given: shown, even for no arguments
    assert args_preview(job) == '["()", {}]'


def _generic_json(record: HistoryRecord) -> str:
    """What ``to_json`` wrote before it spelled records out: the generic encoder's text."""
    fields = {name: getattr(record, name) for name in HistoryRecord.__dataclass_fields__}
    return COMPACT_JSON.encode(fields)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"error": 'ValueError: bad "quote" \\ back\nslash\ttab \x00 \u00e9\u4e2d \U0001f600'},
        {"logs": ["line \u00e9", 'a "quoted" line', ""], "logs_truncated": True},
        {"task": "t\u00e9\u4e2d", "queue": "q\x1f", "args": '[["\\u00e9"], {}]'},
        {"scheduled_at": 0, "started_at": 1e300, "finished_at": -0.0, "duration": 1e-7},
        {"scheduled_at": 1e308, "started_at": 1e308},  # finite, whose sum is not
        {"scheduled_at": float("inf")},  # not JSON: the encoder's spelling
        {"duration": float("nan")},
        {"attempts": True},  # a bool is an int JSON spells otherwise
        {"attempts": 10**30},
        {"logs_truncated": 1},
        {"logs": ("a tuple",)},
        {"error": 42},
    ],
)
def test_a_record_is_written_as_the_generic_encoder_writes_it(changes):
    record = _record("j\u00e9", 1_700_000_000.123456)
    for name, value in changes.items():
        setattr(record, name, value)
    text = record.to_json()
    assert text == _generic_json(record)
    if all(isinstance(v, str) for v in (record.task, record.queue, record.args)):
        assert HistoryRecord.from_json(text).id == record.id
