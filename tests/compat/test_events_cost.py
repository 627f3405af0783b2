"""The cheap path of a worker's task events: the trace calls the events service directly,
and the job's thread records raw values the publisher thread makes into Celery's events."""

from __future__ import annotations

from typing import Any

from spinach_compat.app import trace
from spinach_compat.app.context import JobContext
from spinach_compat.events import records
from spinach_compat.events.dispatcher import EventDispatcher
from spinach_compat.events.worker import WorkerEvents

NODE = "cost@testhost"


def _capturing(dispatcher: EventDispatcher) -> list[tuple[Any, str]]:
    sent: list[tuple[Any, str]] = []
    dispatcher._publish = lambda body, key: sent.append((body, key)) or True  # type: ignore[method-assign]
    return sent


def test_a_received_record_makes_received_then_started_stamped_in_order(make_app):
    """One record at a job's start gives Celery's ``task-received`` and ``task-started``,
    stamped with the node, the pid, the offset, one time and increasing clocks."""
    dispatcher = EventDispatcher(app=make_app(), hostname=NODE)
    sent = _capturing(dispatcher)
    dispatcher.record(records.received, "id-1", "proj.add", "(1, 2)", "{}", "id-0", None, 0,
                      None, None)  # fmt: skip
    dispatcher.record(records.succeeded, "id-1", "3", 0.5)
    (received, k1), (started, k2), (succeeded, k3) = sent
    assert (k1, k2, k3) == ("task.received", "task.started", "task.succeeded")
    assert received == {
        "type": "task-received", "uuid": "id-1", "name": "proj.add", "args": "(1, 2)",
        "kwargs": "{}", "root_id": "id-0", "parent_id": None, "retries": 0, "eta": None,
        "expires": None, "hostname": NODE, "utcoffset": received["utcoffset"],
        "pid": dispatcher.pid, "clock": received["clock"], "timestamp": received["timestamp"],
    }  # fmt: skip
    assert started["timestamp"] == received["timestamp"] <= succeeded["timestamp"]
    assert received["clock"] < started["clock"] < succeeded["clock"]
    assert (succeeded["result"], succeeded["runtime"]) == ("3", 0.5)


def test_the_service_watches_the_trace_only_while_it_runs(make_app):
    """Started, the service is a trace watcher; shut down, it is not (nothing leaks)."""
    service = WorkerEvents(make_app(), NODE, heartbeats=False)
    service.start()
    try:
        assert service in trace.watchers
    finally:
        service.shutdown()
    assert service not in trace.watchers


def test_a_watcher_that_raises_never_fails_the_task(make_app, caplog):
    """A watcher's error is logged; the attempt succeeds; eager runs are not watched."""
    app = make_app()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    seen: list[str] = []

    class Broken:
        def started(self, task: Any, request: Any) -> None:
            seen.append("started")
            raise RuntimeError("broken watcher")

        def finished(self, *_: Any) -> None:
            seen.append("finished")

    trace.watchers.append(Broken())
    try:
        assert add.apply((1, 2)).get() == 3
        assert seen == []
        request = JobContext(id="id-9", args=[2, 2], kwargs={}, is_eager=False)
        outcome = trace.trace_task(add, request, eager=False, propagate=False)
    finally:
        trace.watchers.pop()
    assert outcome.retval == 4 and seen == ["started", "finished"]
    assert "broken watcher" in caplog.text


def _entries(dispatcher: EventDispatcher, eta: Any) -> list[Any]:
    dispatcher._start_thread = lambda: None  # type: ignore[method-assign]
    dispatcher.record(records.received, "id-\u00e9\"1", "proj.add", "('\u00e9\\n',)", "{}",
                      "id-0", "id-p", 2, eta, None)  # fmt: skip
    dispatcher.record(records.succeeded, 'id-\u00e9"1', "'x\\ty'", 0.25)
    return list(dispatcher._buffer)


def test_a_run_of_task_records_is_one_json_message_decoding_to_the_same_events(make_app):
    """The publisher writes the JSON of a run of task records directly: kombu decodes the
    ``task.multi`` message to the events the usual path makes, clocks in order."""
    from kombu.serialization import loads

    dispatcher = EventDispatcher(app=make_app(), hostname=NODE, buffered=True)
    entries = _entries(dispatcher, "2026-12-07T10:00:00+00:00")
    sent = _capturing(dispatcher)
    assert dispatcher._publish_entries(entries)
    [(body, key)] = sent
    events = loads(dispatcher._encoded(body)[0], "application/json", "utf-8")
    usual = [event for entry in entries for event in dispatcher._stamped(entry)]
    assert key == "task.multi" and [e["clock"] for e in events] == [1, 2, 3]
    for event in [*events, *usual]:
        del event["clock"]
    assert events == usual


def test_a_run_with_a_value_json_does_not_take_goes_the_usual_way(make_app):
    """A value the direct JSON does not take (an eta given as a datetime) sends the run
    through the event dicts and kombu's serializer, which encodes it."""
    from datetime import datetime, timezone

    dispatcher = EventDispatcher(app=make_app(), hostname=NODE, buffered=True)
    eta = datetime(2026, 12, 7, 10, tzinfo=timezone.utc)
    entries = _entries(dispatcher, eta)
    sent = _capturing(dispatcher)
    assert dispatcher._publish_entries(entries)
    [(body, key)] = sent
    assert key == "task.multi" and [e["type"] for e in body] == [
        "task-received", "task-started", "task-succeeded",
    ]  # fmt: skip
    assert body[0]["eta"] is eta


def test_a_jobs_argument_reprs_are_made_when_first_read(make_app):
    """A worker job's ``argsrepr`` and ``kwargsrepr`` without the message's are the reprs of
    its arguments, made on first read; set ones are kept."""
    from datetime import datetime, timezone

    from spinach.job import Job

    app = make_app()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    job = Job(add.name, "celery", datetime.now(timezone.utc), 0)
    job.meta = {"task_id": "id-3", "headers": {"trace": "t-1"}}
    request = add.request_from_job(job, [1, "\u00e9"], {"y": None})
    assert request.__dict__["argsrepr"] is None  # nothing made yet
    assert (request.argsrepr, request.kwargsrepr) == ("(1, '\u00e9')", "{'y': None}")
    request.argsrepr = "(hidden)"
    assert request.argsrepr == "(hidden)" and request.get("kwargsrepr") == "{'y': None}"


def test_a_jobs_argument_reprs_are_the_message_s_when_it_has_them(make_app):
    """The ``argsrepr``/``kwargsrepr`` a caller gave (in the job's meta) are the request's;
    a header of that name wins over them, as in Celery's message; none is made."""
    from datetime import datetime, timezone

    from spinach.job import Job

    app = make_app()

    @app.task
    def pay(card: str) -> None: ...

    job = Job(pay.name, "celery", datetime.now(timezone.utc), 0)
    job.meta = {"task_id": "id-4", "headers": {}, "argsrepr": "(<card>,)", "kwargsrepr": ""}
    request = pay.request_from_job(job, ["4111"], {})
    assert (request.argsrepr, request.kwargsrepr) == ("(<card>,)", "")  # "" is kept, as Celery
    job.meta["headers"] = {"argsrepr": "(secret)"}
    request = pay.request_from_job(job, ["4111"], {})
    assert (request.argsrepr, request.kwargsrepr) == ("(secret)", "")


def test_a_run_s_succeeded_event_follows_its_started_one(make_app):
    """Events turned off during a run: the run whose start was sent still sends its end;
    a run started while they were off sends none."""
    service = WorkerEvents(make_app(), NODE, heartbeats=False)
    service.start()
    try:
        dispatcher = service.dispatcher
        assert dispatcher is not None
        dispatcher._start_thread = lambda: None  # type: ignore[method-assign]
        app = service.app

        @app.task
        def noop() -> None:
            return None

        first = JobContext(id="id-1", args=[], kwargs={}, is_eager=False, root_id="id-1")
        second = JobContext(id="id-2", args=[], kwargs={}, is_eager=False, root_id="id-2")
        token = service.started(noop, first)  # the trace gives it back to finished
        service.set_task_events(False)
        service.finished(token, noop, first, "SUCCESS", None, 0.1)
        token = service.started(noop, second)
        service.set_task_events(True)
        service.finished(token, noop, second, "SUCCESS", None, 0.1)
        sent = [event for entry in dispatcher._buffer for event in dispatcher._stamped(entry)]
        dispatcher._buffer.clear()
    finally:
        service.shutdown()
    assert [(event["type"], event["uuid"]) for event in sent] == [
        ("task-received", "id-1"), ("task-started", "id-1"), ("task-succeeded", "id-1"),
    ]  # fmt: skip


def test_a_flush_publishes_what_waited_and_leaves_what_came_since(make_app, monkeypatch):
    """The publisher takes the records waiting when it wakes, ``BATCH_LIMIT`` at a time;
    those recorded meanwhile wait for the next flush (fewer, bigger messages); closing
    publishes them all."""
    from spinach_compat.events import dispatcher as dispatcher_module

    monkeypatch.setattr(dispatcher_module, "BATCH_LIMIT", 2)
    dispatcher = EventDispatcher(app=make_app(), hostname=NODE, buffered=True)
    dispatcher._start_thread = lambda: None  # type: ignore[method-assign]
    batches: list[list[str]] = []
    dispatcher._publish_entries = lambda entries: (  # type: ignore[method-assign]
        batches.append([values[0] for _, _, values in entries]) or True
    )
    for number in range(5):
        dispatcher.record(records.succeeded, f"id-{number}", "None", 0.1)
    assert dispatcher._flush(3)
    assert batches == [["id-0", "id-1"], ["id-2"]] and len(dispatcher._buffer) == 2
    assert dispatcher._flush(None)
    assert batches[2:] == [["id-3", "id-4"]] and not dispatcher._buffer


def test_the_task_counter_counts_every_job_of_concurrent_threads():
    """The heartbeat's counts, kept without a lock, lose no job of eight threads."""
    import threading

    from spinach_compat.events.worker import TaskCounter

    counter, go = TaskCounter(), threading.Event()

    def jobs() -> None:
        go.wait()
        for _ in range(2000):
            counter.started()
            counter.finished()

    threads = [threading.Thread(target=jobs) for _ in range(8)]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join()
    counter.started()
    assert (counter.active, counter.processed) == (1, 16_000)
