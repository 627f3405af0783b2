"""Celery-style tasks run by the native engine's worker threads (MemoryBroker)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from spinach.context import current_job
from spinach_compat import signals
from spinach_compat.exceptions import MaxRetriesExceededError, TaskRevokedError

from .conftest import WAIT


def test_delay_runs_on_a_native_job_whose_id_is_the_task_id(app, run_worker):
    @app.task(bind=True)
    def whoami(self, x):
        job = current_job()
        return [x, self.request.id, job.id, job.task_name, self.request.called_directly]

    run_worker()
    result = whoami.apply_async((1,), task_id="my-id")
    assert result.get(timeout=WAIT) == [1, "my-id", "my-id", whoami.name, False]
    assert result.state == "SUCCESS"


def test_request_fields_in_a_worker(app, run_worker):
    @app.task(bind=True, queue="q1")
    def fields(self, a, b=0):
        r = self.request
        return {
            "args": r.args, "kwargs": r.kwargs, "retries": r.retries, "is_eager": r.is_eager,
            "delivery_info": r.delivery_info, "headers": r.headers, "custom": r.custom,
            "hostname": r.hostname, "expires": r.expires,
        }  # fmt: skip

    app.conf.task_queues = ["q1"]  # consumed by a worker started without -Q
    run_worker()
    got = fields.apply_async((1,), {"b": 2}, headers={"custom": "x"}, expires=3600).get(WAIT)
    assert (got["args"], got["kwargs"], got["retries"], got["is_eager"]) == (
        [1],
        {"b": 2},
        0,
        False,
    )
    assert got["delivery_info"]["routing_key"] == "q1"
    assert (got["headers"], got["custom"]) == ({"custom": "x"}, "x")
    assert got["hostname"].startswith("celery@")
    assert datetime.fromisoformat(got["expires"]) > datetime.now(timezone.utc)


def test_retry_through_the_engine(app, run_worker):
    @app.task(bind=True, max_retries=3)
    def flaky(self, n):
        if self.request.retries < 2:
            raise self.retry(args=(n + 1,), countdown=0)
        return [n, self.request.retries, current_job().retries]

    run_worker()
    result = flaky.delay(1)
    assert result.get(timeout=WAIT) == [3, 2, 2]


def test_retry_past_max_retries_fails_once(app, run_worker, recorder):
    @app.task(bind=True, max_retries=1)
    def doomed(self):
        raise self.retry(countdown=0)

    signals.task_failure.connect(
        lambda sender, exception, **kw: recorder.add("failure", type(exception)),
        weak=False, dispatch_uid="doomed",
    )  # fmt: skip
    try:
        run_worker()
        result = doomed.delay()
        with pytest.raises(MaxRetriesExceededError):
            result.get(timeout=WAIT)
    finally:
        signals.task_failure.disconnect(dispatch_uid="doomed")
    assert recorder.named("failure") == [("failure", MaxRetriesExceededError)]


def test_failure_is_not_retried_by_the_engine(app, run_worker, recorder):
    @app.task
    def broken():
        recorder.add("ran")
        raise LookupError("nope")

    run_worker()
    with pytest.raises(LookupError):
        broken.delay().get(timeout=WAIT)
    assert recorder.named("ran") == [("ran",)]


def test_autoretry_then_success(app, run_worker):
    @app.task(bind=True, autoretry_for=(OSError,), retry_backoff=False,
              retry_kwargs={"countdown": 0})  # fmt: skip
    def unstable(self):
        if self.request.retries == 0:
            raise OSError("first")
        return self.request.retries

    run_worker()
    assert unstable.delay().get(timeout=WAIT) == 1


def test_countdown_sets_the_job_due_time(app):
    @app.task
    def later():
        return 1

    result = later.apply_async(countdown=3600)
    [job] = app.engine.broker.scheduled_jobs()
    assert job.id == result.id
    assert job.at > datetime.now(timezone.utc) + timedelta(minutes=59)
    assert result.state == "PENDING"


def test_expired_job_is_revoked_and_never_runs(app, run_worker, recorder):
    @app.task
    def too_late():
        recorder.add("ran")

    signals.task_revoked.connect(
        lambda sender, request, expired, **kw: recorder.add("revoked", expired),
        weak=False, dispatch_uid="late",
    )  # fmt: skip
    try:
        past = datetime.now(timezone.utc) - timedelta(seconds=1)
        result = too_late.apply_async(expires=past)
        run_worker()
        with pytest.raises(TaskRevokedError):
            result.get(timeout=WAIT)
    finally:
        signals.task_revoked.disconnect(dispatch_uid="late")
    assert result.state == "REVOKED"
    assert recorder.events == [("revoked", True)]


def test_revoke_before_start(app, run_worker, recorder):
    @app.task
    def never():
        recorder.add("ran")

    result = never.delay()
    result.revoke()
    run_worker()
    with pytest.raises(TaskRevokedError):
        result.get(timeout=WAIT)
    assert recorder.events == []


def test_hooks_signals_and_update_state(app, run_worker, recorder):
    class Base(app.Task):
        def on_success(self, retval, task_id, args, kwargs):
            recorder.add("on_success", retval, self.AsyncResult(task_id).state)

        def after_return(self, status, retval, task_id, args, kwargs, einfo):
            recorder.add("after_return", status)

    @app.task(base=Base, bind=True, track_started=True)
    def progress(self):
        recorder.add("started_state", self.AsyncResult(self.request.id).state)
        self.update_state(state="PROGRESS", meta={"done": 1})
        recorder.add("custom", self.AsyncResult(self.request.id).state)
        return "done"

    for name in ("before_task_publish", "after_task_publish", "task_prerun", "task_postrun"):
        getattr(signals, name).connect(
            lambda sender, name=name, **kw: recorder.add(name), weak=False, dispatch_uid=name
        )
    try:
        run_worker()
        progress.delay().get(timeout=WAIT)
        recorder.wait_for(lambda events: ("task_postrun",) in events)
    finally:
        for name in ("before_task_publish", "after_task_publish", "task_prerun", "task_postrun"):
            getattr(signals, name).disconnect(dispatch_uid=name)
    assert recorder.events == [
        ("before_task_publish",), ("after_task_publish",), ("task_prerun",),
        ("started_state", "STARTED"), ("custom", "PROGRESS"), ("on_success", "done", "SUCCESS"),
        ("after_return", "SUCCESS"), ("task_postrun",),
    ]  # fmt: skip


def test_ignore_result_stores_nothing(app, run_worker, recorder):
    @app.task(ignore_result=True)
    def quiet():
        recorder.add("ran")

    run_worker()
    result = quiet.delay()
    recorder.wait_for(lambda events: events == [("ran",)])
    app.stop_worker()  # the job is reported before the workers stop
    assert result.state == "PENDING"


def test_datetime_arguments_survive_the_native_payload(app, run_worker):
    moment = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)

    @app.task
    def shift(when, days):
        return when + timedelta(days=days)

    run_worker()
    assert shift.delay(moment, 1).get(timeout=WAIT) == moment + timedelta(days=1)


def test_send_task_by_name_and_current_task(app, run_worker):
    from spinach_compat import current_task

    @app.task(name="named.task")
    def named(x):
        return [x, current_task.name]

    run_worker()
    assert app.send_task("named.task", args=[4]).get(timeout=WAIT) == [4, "named.task"]


def test_retry_without_throw_runs_again_after_this_run(app, run_worker, recorder):
    @app.task(bind=True)
    def twice(self):
        recorder.add("run", self.request.retries)
        if self.request.retries == 0:
            self.retry(countdown=0, throw=False)
        return self.request.retries

    run_worker()
    result = twice.delay()
    recorder.wait_for(lambda events: len(events) == 2)
    assert recorder.events == [("run", 0), ("run", 1)]
    assert result.get(timeout=WAIT) == 0  # a stored SUCCESS is never overwritten
