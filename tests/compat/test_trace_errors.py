"""Errors raised around a task's body, and async time-limit exceptions landing late.

Neither may make the native engine run a task again, nor strike the next job of a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from kombu.exceptions import EncodeError

from spinach import signals as native_signals
from spinach_compat import Task, signals
from spinach_compat.app import timelimits
from spinach_compat.app.context import Context
from spinach_compat.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from .conftest import WAIT, Recorder


@pytest.fixture
def finished_jobs(app, recorder: Recorder) -> Iterator[Callable[[str], str]]:
    """``wait(job_id)``: the final status of the native job, once the engine ended it."""

    def on_finished(namespace: str, job: Any) -> None:
        recorder.add("finished", job.id, job.status.name)

    native_signals.job_finished.connect(on_finished, sender=app.namespace)

    def wait(job_id: str) -> str:
        recorder.wait_for(lambda events: any(e[:2] == ("finished", job_id) for e in events))
        return next(e[2] for e in recorder.named("finished") if e[1] == job_id)

    yield wait
    native_signals.job_finished.disconnect(on_finished, sender=app.namespace)


def _logged(caplog: pytest.LogCaptureFixture, *texts: str) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    return [m for m in messages if all(text in m for text in texts)]


# -- a result that cannot be stored --------------------------------------------------------


def test_unencodable_result_fails_once_with_encode_error(app, run_worker, recorder, finished_jobs):
    @app.task
    def as_set():
        recorder.add("ran")
        return {1, 2}

    signals.task_failure.connect(
        lambda sender, exception, **kw: recorder.add("failure", type(exception)),
        weak=False, dispatch_uid="as_set",
    )  # fmt: skip
    try:
        run_worker()
        result = as_set.delay()
        with pytest.raises(EncodeError):
            result.get(timeout=WAIT)
        assert finished_jobs(result.id) == "FAILED"  # ended, no native retry scheduled
    finally:
        signals.task_failure.disconnect(dispatch_uid="as_set")
    fresh = app.AsyncResult(result.id)
    assert fresh.state == "FAILURE"
    assert isinstance(fresh.result, EncodeError) and "set" in str(fresh.result)
    assert recorder.named("ran") == [("ran",)]
    assert recorder.named("failure") == [("failure", EncodeError)]


def test_unencodable_result_in_eager_mode_matches_celery(eager_app, impl):
    """Real Celery 5.7 stores FAILURE with ``EncodeError`` and sends ``task_failure``."""
    backend = "cache+memory://" if impl.name == "celery" else "memory://"
    eager_app.conf.update(result_backend=backend, task_store_eager_result=True)
    failures: list[type] = []

    def on_failure(sender: Any = None, exception: Any = None, **kw: Any) -> None:
        failures.append(type(exception))

    @eager_app.task
    def as_set():
        return {1, 2}

    impl.signals.task_failure.connect(on_failure, weak=False, dispatch_uid="enc")
    try:
        result = as_set.apply()
    finally:
        impl.signals.task_failure.disconnect(dispatch_uid="enc")
    assert (result.state, type(result.result), failures) == ("FAILURE", EncodeError, [EncodeError])
    stored = eager_app.AsyncResult(result.id)
    assert (stored.state, type(stored.result)) == ("FAILURE", EncodeError)


# -- handlers raising ----------------------------------------------------------------------


@pytest.mark.parametrize("handler", ["on_success", "after_return"])
def test_handler_error_after_success_is_logged_once(
    app, run_worker, recorder, finished_jobs, caplog, handler
):
    """As Celery 5.7: the SUCCESS stays, the error is logged, the task never runs again."""

    class Fragile(Task):
        def on_success(self, *args: Any) -> None:
            if handler == "on_success":
                raise KeyError("handler broke")

        def after_return(self, *args: Any) -> None:
            if handler == "after_return":
                raise KeyError("handler broke")

    @app.task(base=Fragile)
    def fragile():
        recorder.add("ran")
        return 7

    run_worker()
    result = fragile.delay()
    assert result.get(timeout=WAIT) == 7
    assert finished_jobs(result.id) == "SUCCEEDED"
    assert recorder.named("ran") == [("ran",)]
    assert app.AsyncResult(result.id).state == "SUCCESS"
    assert _logged(caplog, fragile.name, result.id, handler, "handler broke")


def test_internal_error_fails_the_job_once_and_is_reported(
    app, run_worker, recorder, finished_jobs, caplog
):
    class BrokenOnFailure(Task):
        def on_failure(self, *args: Any) -> None:
            raise KeyError("on_failure broke")

    @app.task(base=BrokenOnFailure)
    def doomed():
        recorder.add("ran")
        raise ValueError("body")

    def on_internal(sender: Any, task_id: str, exception: BaseException, **kw: Any) -> None:
        recorder.add("internal", task_id, type(exception))

    signals.task_internal_error.connect(on_internal, weak=False, dispatch_uid="doomed")
    try:
        run_worker()
        result = doomed.delay()
        assert finished_jobs(result.id) == "FAILED"
    finally:
        signals.task_internal_error.disconnect(dispatch_uid="doomed")
    assert recorder.named("ran") == [("ran",)]
    assert recorder.named("internal") == [("internal", result.id, KeyError)]
    stored = app.AsyncResult(result.id)  # the body's own failure, stored first, is kept
    assert (stored.state, type(stored.result)) == ("FAILURE", ValueError)
    assert _logged(caplog, doomed.name, result.id, "internal error", "on_failure broke")


def test_internal_error_before_a_final_state_stores_failure(
    app, run_worker, recorder, finished_jobs
):
    class BrokenOnRetry(Task):
        def on_retry(self, *args: Any) -> None:
            raise KeyError("on_retry broke")

    @app.task(base=BrokenOnRetry, bind=True)
    def flaky(self):
        recorder.add("ran")
        raise self.retry(countdown=0)

    run_worker()
    result = flaky.delay()
    assert finished_jobs(result.id) == "FAILED"
    with pytest.raises(KeyError, match="on_retry broke"):  # RETRY was stored, then replaced
        result.get(timeout=WAIT)
    assert recorder.named("ran") == [("ran",)]


# -- time-limit exceptions landing after the body ------------------------------------------


@pytest.fixture
def guards(monkeypatch) -> Iterator[SimpleNamespace]:
    """``made``: the ``_Guard`` of each run. Each exception the test puts in ``landings``
    is injected in the thread by the next ``disarm`` and lands before it takes its lock,
    as one the timers injected late would.
    """
    state = SimpleNamespace(made=[], landings=[])
    disarm = timelimits._Guard.disarm

    def landing_disarm(guard: Any) -> None:
        if guard not in state.made:
            state.made.append(guard)
        if state.landings:
            kind = state.landings.pop(0)
            guard.hard_struck |= kind is timelimits.HardTimeLimit  # as the hard timer does
            timelimits.ThreadTarget().inject(kind)  # lands as this call returns
        disarm(guard)

    monkeypatch.setattr(timelimits._Guard, "disarm", landing_disarm)
    yield state
    for guard in state.made:
        disarm(guard)  # stop the timers of a run left armed (by the old code)


def _limited_call(app, function: Callable[[], Any]) -> Any:
    task = app.task(lambda: None, name=f"{app.main}.limited")
    request = Context(id="limited-1", is_eager=False, timelimit=(60, 30), ignore_result=True)
    return timelimits.call_with_limits(task, request, function)


def _assert_disarmed(guard: Any) -> None:
    assert not guard._running
    assert all(timer.finished.is_set() for timer in guard._timers)
    _still_python()  # an exception still pending would land here


def _still_python() -> None:
    return None


def test_soft_limit_landing_in_disarm_still_disarms(app, guards):
    guards.landings.append(SoftTimeLimitExceeded)
    assert _limited_call(app, lambda: "done") == "done"  # the body had returned
    _assert_disarmed(guards.made[0])


def test_landing_in_disarm_keeps_the_body_error(app, guards):
    guards.landings.append(SoftTimeLimitExceeded)

    def broken() -> None:
        raise LookupError("body")

    with pytest.raises(LookupError, match="body"):
        _limited_call(app, broken)
    _assert_disarmed(guards.made[0])


def test_soft_then_hard_landing_in_disarms_fail_with_time_limit(app, guards):
    guards.landings.extend([SoftTimeLimitExceeded, timelimits.HardTimeLimit])
    with pytest.raises(TimeLimitExceeded):
        _limited_call(app, lambda: "done")
    _assert_disarmed(guards.made[0])
