"""``spinach_unique`` and friends: the native unique jobs for Celery tasks (Celery has
none)."""

from __future__ import annotations

import pytest

from tests.helpers import wait_until


def test_a_unique_task_sent_twice_is_one_job(app, recorder) -> None:
    @app.task(spinach_unique=True)
    def report(customer: int, week: int) -> None:
        recorder.add("ran", customer, week)

    first = report.delay(42, week=7)
    again = report.apply_async((42,), {"week": 7})
    other = report.delay(42, week=8)

    assert again.id == first.id != other.id
    assert sum(app.engine.broker.queue_lengths().values()) == 2

    app.start_worker(concurrency=1, block=False)
    first.get(timeout=10)
    other.get(timeout=10)
    # The result is stored a moment before the worker reports the job's end to the broker,
    # which releases the key.
    assert wait_until(lambda: app.engine.broker.running_jobs() == {})
    after = report.delay(42, week=7)
    assert after.id != first.id
    after.get(timeout=10)
    assert recorder.events.count(("ran", 42, 7)) == 2


def test_a_unique_key_function_and_its_errors(app) -> None:
    @app.task(spinach_unique_key=lambda customer, **_: str(customer))
    def keyed(customer: int, note: str = "") -> None: ...

    @app.task(spinach_unique_key=lambda *a, **kw: None)
    def broken(customer: int) -> None: ...

    assert keyed.delay(1, note="a").id == keyed.delay(1, note="b").id
    with pytest.raises(ValueError, match=r"unique_key of task '.*broken' must return"):
        broken.delay(1)
    assert wait_until(lambda: sum(app.engine.broker.queue_lengths().values()) == 1)
