"""The project's tests, written against Celery's documented testing API only."""

import pytest
from celery import current_app, states
from celery.contrib.testing.app import TestApp, setup_default_app
from celery.contrib.testing.manager import Manager
from celery.contrib.testing.worker import start_worker
from shop import tasks


def test_per_test_worker_runs_a_task_declared_in_the_test(celery_app, celery_worker):
    @celery_app.task
    def mul(x, y):
        return x * y

    celery_worker.reload()
    assert mul.delay(4, 4).get(timeout=10) == 16


def test_celery_config_configures_the_app(celery_app):
    assert celery_app.conf.result_expires == 600
    assert celery_app.conf.broker_url == "memory://"
    assert celery_app.conf.task_default_queue == "shop"


@pytest.mark.celery(result_backend="cache+memory://", task_default_queue="marked")
def test_the_celery_marker_overrides_the_config(celery_app):
    assert celery_app.conf.task_default_queue == "marked"
    assert celery_app.conf.result_expires == 600


def test_depends_on_current_app(celery_app, depends_on_current_app):
    assert current_app._get_current_object() is celery_app


def test_manager_follows_a_running_task(celery_app):
    manager = Manager(celery_app)
    tasks.go.clear()
    with start_worker(celery_app, pool="threads", concurrency=2):
        result = tasks.wait_for_go.delay()
        manager.assert_accepted([result.id])
        tasks.go.set()
        manager.join(result, timeout=10)
        assert result.get(timeout=10) is True
        manager.assert_result_tasks_in_progress_or_completed([result])


def test_manager_waits_for_and_against_things(celery_app):
    manager = Manager(celery_app)
    attempts = []

    def third_time_lucky():
        attempts.append(1)
        if len(attempts) < 3:
            raise LookupError("not yet")
        return "done"

    assert (
        manager.wait_for(third_time_lucky, (LookupError,), interval_start=0, interval_step=0)
        == "done"
    )

    def never():
        raise LookupError("never happens")

    manager.ensure_not_for_a_while(
        never, (LookupError,), max_retries=2, interval_start=0, interval_step=0
    )


def test_start_worker_on_a_test_app():
    app = TestApp(
        config={
            "task_default_queue": "direct",
            "broker_transport_options": {"polling_interval": 0.05},
        }
    )

    @app.task
    def shout(word):
        return word.upper()

    with setup_default_app(app):
        assert app.conf.broker_url == "memory://"
        assert app.conf.task_default_queue == "direct"
        with start_worker(app, shutdown_timeout=10) as worker:
            assert worker is not None
            assert shout.delay("hi").get(timeout=10) == "HI"
            assert tasks.add.apply_async((1, 2), queue="direct").get(timeout=10) == 3


# The session worker runs from its first test to the end of the session: with Celery,
# whose memory:// broker is one per process, it would take the tasks sent to the per-test
# workers of the tests above, so its tests come last.


def test_session_worker_runs_a_shared_task(celery_session_app, celery_session_worker):
    assert tasks.add.delay(2, 2).get(timeout=10) == 4


def test_session_worker_reports_a_failure(celery_session_worker):
    result = tasks.refuse.delay("out of stock")
    with pytest.raises(ValueError, match="out of stock"):
        result.get(timeout=10)
    assert result.state == states.FAILURE


class TestMisuse:
    @pytest.fixture
    def celery_app(self):
        return None

    def test_a_worker_without_an_app_is_an_error(self, celery_worker):
        pass
