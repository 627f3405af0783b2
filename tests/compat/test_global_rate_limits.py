"""``spinach_global_rate_limits``: Celery's ``rate_limit`` held for the whole namespace by
the broker (native rate limits) instead of per worker process."""

from __future__ import annotations

import pytest

from spinach.rate_limit import RateLimit
from spinach_compat.app import ratelimit
from tests.helpers import wait_until


@pytest.mark.parametrize(
    ("limit", "native"),
    [("10/s", "10/s"), ("120/min", "120/m"), ("5/h", "5/h"), (4, "4.000000000/s"), (None, None)],
)
def test_celery_rates_as_native_ones(limit, native) -> None:
    assert ratelimit.native_rate(limit) == native


def test_by_default_the_limit_is_per_worker(app) -> None:
    @app.task(rate_limit="10/s")
    def limited() -> None: ...

    assert app.engine.tasks[limited.name].rate is None


def test_the_setting_gives_the_native_tasks_the_limit(make_app) -> None:
    app = make_app(spinach_global_rate_limits=True)

    @app.task(rate_limit="10/s")
    def before() -> None: ...

    engine = app.engine

    @app.task(rate_limit="30/m")
    def after() -> None: ...

    @app.task
    def free() -> None: ...

    assert engine.tasks[before.name].rate == RateLimit(0.1)
    assert engine.tasks[after.name].rate == RateLimit(2.0)
    assert engine.tasks[free.name].rate is None


def test_a_job_is_not_deferred_by_the_worker_then(make_app, recorder) -> None:
    app = make_app(spinach_global_rate_limits=True)

    @app.task(rate_limit="1/h")
    def limited(n: int) -> None:
        recorder.add("ran", n)

    app.engine.broker.set_concurrency_keys(app.engine.tasks.values())
    limited.delay(1)
    limited.delay(2)
    app.start_worker(concurrency=1, block=False)
    recorder.wait_for(lambda events: len(events) == 1)
    # The second job waits an hour in the broker's future jobs: no retry, no thread held.
    broker = app.engine.broker
    assert wait_until(lambda: broker.scheduled_jobs() != [])
    assert [job.retries for job in broker.scheduled_jobs()] == [0]
    assert recorder.events == [("ran", 1)]
