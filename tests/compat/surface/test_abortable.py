"""celery.contrib.abortable on the facade: a running task sees abort() and stops."""

from __future__ import annotations

import threading

from spinach_compat.contrib.abortable import ABORTED, AbortableAsyncResult, AbortableTask

from ..conftest import WAIT


def test_a_running_task_stops_when_aborted(app, run_worker) -> None:
    started = threading.Event()

    @app.task(base=AbortableTask, bind=True, name="surface.abortable")
    def long_job(self):
        started.set()
        checks = 0
        while not self.is_aborted():
            checks += 1
            if checks > WAIT * 100:
                return "never aborted"
            threading.Event().wait(0.01)  # the job's own polling interval
        return "aborted"

    run_worker()
    result = long_job.delay()
    assert isinstance(result, AbortableAsyncResult)
    assert started.wait(WAIT)
    assert not result.is_aborted()
    result.abort()
    assert result.get(timeout=WAIT) == "aborted"
    assert result.state == "SUCCESS"  # the outcome replaces ABORTED, as in Celery


def test_abort_before_the_task_checks_and_eager_runs(app) -> None:
    @app.task(base=AbortableTask, bind=True, name="surface.check")
    def check(self, task_id):
        return self.is_aborted(task_id=task_id)

    other = AbortableAsyncResult("other-id", app=app)
    other.abort()
    assert other.state == ABORTED and other.is_aborted()
    app.conf.task_always_eager = True
    assert check.delay("other-id").get() is True
    assert check.delay("unknown-id").get() is False
