"""Task options: checked in eager mode too, task settings read from the app when used,
publish retry policies as kombu's, and the arguments given to ``retry``.

Tests taking ``impl`` run on real Celery and on the facade with the same expectations.
"""

from __future__ import annotations

import types
from unittest import mock

import pytest
from kombu.utils import functional as kombu_functional

from spinach_compat.app import publish
from spinach_compat.exceptions import UnsupportedFeature

from .conftest import WAIT

# -- option checks in eager mode -------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("serializer", "auth", "message signing"),
        ("serializer", "not-installed", "no such serializer"),
        ("compression", "not-installed", "compression"),
        ("connection", object(), "custom connections"),
        ("producer", object(), "custom producers"),
    ],
)
@pytest.mark.parametrize("eager", [True, False])
def test_unsupported_options_raise_eager_or_not(make_app, eager, option, value, message):
    app = make_app(task_always_eager=eager)
    ran = []

    @app.task
    def job():
        ran.append(1)

    with pytest.raises(UnsupportedFeature, match=message):
        job.apply_async(**{option: value})
    with pytest.raises(UnsupportedFeature, match=message):
        job.s().apply_async(**{option: value})
    assert ran == []


def test_supported_options_still_run_eagerly(make_app):
    app = make_app(task_always_eager=True)

    @app.task
    def add(a, b):
        return a + b

    options = {"serializer": "json", "priority": 3, "queue": "q", "expires": 60, "retry": True}
    assert add.apply_async((1, 2), **options).get() == 3


# -- task settings follow the app's configuration --------------------------------------------

LATE_SETTINGS = {
    "task_ignore_result": True,
    "task_track_started": True,
    "task_acks_late": True,
    "task_store_errors_even_if_ignored": True,
    "task_default_priority": 4,
    "task_default_rate_limit": "3/m",
}
ATTRIBUTES = (
    "ignore_result", "track_started", "acks_late", "store_errors_even_if_ignored", "priority",
    "rate_limit", "serializer",
)  # fmt: skip


def _configure(app, how: str, settings: dict) -> None:
    if how == "update":
        app.conf.update(settings)
    else:
        app.config_from_object(type("Config", (), settings))


@pytest.mark.parametrize("how", ["update", "config_from_object"])
def test_settings_given_after_definition_reach_the_tasks(impl, how):
    app = impl.Celery("late", broker="memory://", set_as_current=False)

    @app.task
    def plain():
        pass

    @app.task(ignore_result=False, acks_late=False, rate_limit="1/s")
    def explicit():
        pass

    class Base(app.Task):
        track_started = False
        rate_limit = None  # None: the app's, as if left out

    @app.task(base=Base)
    def based():
        pass

    _configure(app, how, LATE_SETTINGS)
    tasks = {"plain": plain, "explicit": explicit, "based": based}
    values = {label: [getattr(task, a) for a in ATTRIBUTES] for label, task in tasks.items()}
    assert values == {
        "plain": [True, True, True, True, 4, "3/m", "json"],
        "explicit": [False, True, False, True, 4, "1/s", "json"],
        "based": [True, False, True, True, 4, "3/m", "json"],
    }
    plain.ignore_result = False  # set on the task: wins over the app's
    assert plain.ignore_result is False


def test_settings_given_after_definition_rule_the_worker(app, run_worker, recorder):
    @app.task(bind=True, ignore_result=False)
    def tracked(self):
        recorder.add("state", self.AsyncResult(self.request.id).state)

    @app.task
    def quiet():
        recorder.add("quiet")

    app.conf.update(task_track_started=True, task_ignore_result=True)
    run_worker()
    tracked.delay().get(timeout=WAIT)
    result = quiet.delay()
    recorder.wait_for(lambda events: ("quiet",) in events)
    app.stop_worker()  # the job is reported before the workers stop
    assert recorder.events == [("state", "STARTED"), ("quiet",)]
    assert result.state == "PENDING"


def test_unsupported_serializer_refused_set_on_the_task_or_in_the_app(make_app):
    app = make_app()
    with pytest.raises(UnsupportedFeature, match="message signing"):

        @app.task(serializer="auth")
        def pickled():
            pass

    @app.task
    def plain():
        pass

    app.conf.task_serializer = "auth"
    with pytest.raises(UnsupportedFeature, match="task_serializer"):
        plain.delay()


# -- publish retry policies ------------------------------------------------------------------

INTERVALS = {"interval_start": 0.1, "interval_step": 0.3, "interval_max": 0.95}


def _kombu_outcome(policy: dict, failures: int, monkeypatch) -> tuple[int, list[float], bool]:
    """Calls, waits and success of kombu's ``retry_over_time`` with ``failures`` first."""
    waits: list[float] = []
    calls: list[int] = []
    monkeypatch.setattr(kombu_functional, "sleep", waits.append)

    def fun():
        calls.append(1)
        if len(calls) <= failures:
            raise ConnectionError("down")

    try:
        kombu_functional.retry_over_time(fun, ConnectionError, **policy)
    except ConnectionError:
        return len(calls), waits, False
    return len(calls), waits, True


def _failing_schedule(app, failures: int, error: type[Exception] = ConnectionError):
    """Patch the engine so that its first ``failures`` enqueues raise ``error``."""
    real, calls = app.engine.schedule_jobs, []

    def schedule(jobs):
        calls.append(1)
        if len(calls) <= failures:
            raise error("down")
        return real(jobs)

    return calls, mock.patch.object(app.engine, "schedule_jobs", side_effect=schedule)


@pytest.mark.parametrize(("max_retries", "failures"), [(None, 7), (2, 5), (2, 2), (0, 1)])
@pytest.mark.parametrize("where", ["call", "setting"])
def test_publish_retries_as_kombu(make_app, monkeypatch, where, max_retries, failures):
    policy = {"max_retries": max_retries, **INTERVALS}
    expected = _kombu_outcome(policy, failures, monkeypatch)
    waits: list[float] = []
    monkeypatch.setattr(publish, "time", types.SimpleNamespace(sleep=waits.append))
    app = make_app()
    if where == "call":  # merged over the setting, as Celery does
        app.conf.task_publish_retry_policy = {"max_retries": 0, **INTERVALS}

    @app.task
    def job():
        pass

    calls, patch = _failing_schedule(app, failures)
    with patch:
        try:
            if where == "call":
                job.apply_async(retry_policy={"max_retries": max_retries})
            else:
                app.conf.task_publish_retry_policy = policy
                job.delay()
            published = True
        except ConnectionError:
            published = False
    assert (len(calls), waits, published) == expected  # the same float steps


def test_unbounded_retry_policy_publishes(make_app):
    app = make_app(task_publish_retry_policy={"max_retries": None})

    @app.task
    def job():
        pass

    spy = mock.patch.object(app.engine, "schedule_jobs", wraps=app.engine.schedule_jobs)
    with spy as schedule:
        job.delay()
        job.apply_async(retry_policy={"max_retries": None})
    assert schedule.call_count == 2


def test_publish_retries_only_retryable_errors(make_app, monkeypatch):
    monkeypatch.setattr(publish, "time", types.SimpleNamespace(sleep=lambda _: None))
    app = make_app(task_publish_retry_policy={"max_retries": None, **INTERVALS})

    @app.task
    def job():
        pass

    calls, patch = _failing_schedule(app, 3, KeyError)
    with patch, pytest.raises(KeyError):
        job.delay()
    assert len(calls) == 1
    with patch:
        job.apply_async(retry_policy={"retry_errors": (KeyError,)})
    assert len(calls) == 4  # 2 more failures, then published


# -- arguments given to retry ----------------------------------------------------------------

RETRY_CASES = [
    # (apply_async arguments, retry arguments, what the second run gets)
    ({"kwargs": {"url": "a", "timeout": 1}}, {"args": ("b",)}, ["b", 1, {}]),
    ({"kwargs": {"url": "a", "timeout": 1, "z": 3}}, {"args": ("b", 2)}, ["b", 2, {"z": 3}]),
    ({"args": ("a", 1)}, {"kwargs": {"timeout": 2}}, ["a", 2, {}]),
    ({"args": ("a", 1)}, {"kwargs": {"url": "c", "z": 1}}, ["c", 1, {"z": 1}]),
    ({"args": ("a",), "kwargs": {"timeout": 1}}, {"kwargs": {"z": 9}}, ["a", 5, {"z": 9}]),
    ({"args": ("a",), "kwargs": {"timeout": 1}}, {"args": ("q",)}, ["q", 1, {}]),
    (
        {"args": ("a",), "kwargs": {"timeout": 1}},
        {"args": ("q",), "kwargs": {"z": 9}},
        ["q", 5, {"z": 9}],
    ),
]


@pytest.mark.parametrize(("call", "retry_with", "expected"), RETRY_CASES)
def test_retry_arguments_fit_the_request(eager_app, impl, call, retry_with, expected):
    @eager_app.task(bind=True, default_retry_delay=0)
    def fetch(self, url, timeout=5, **extra):
        if self.request.retries == 0:
            raise self.retry(**retry_with)
        return [url, timeout, extra]

    assert fetch.apply_async(**call).get() == expected


def test_retry_arguments_with_positional_only_parameters(eager_app, impl):
    @eager_app.task(bind=True, default_retry_delay=0)
    def pair(self, a, /, b, *rest):
        if self.request.retries == 0:
            raise self.retry(args=(5, 6))
        return [a, b, list(rest), dict(self.request.kwargs)]

    assert pair.apply_async((1,), {"b": 2}).get() == [5, 6, [], {}]


def test_retry_with_args_of_a_task_called_with_kwargs_on_a_worker(app, run_worker):
    @app.task(bind=True, default_retry_delay=0)
    def fetch(self, url, timeout=5):
        if self.request.retries == 0:
            raise self.retry(args=("b",))
        return [url, timeout, self.request.retries]

    run_worker()
    result = fetch.apply_async(kwargs={"url": "a", "timeout": 1})
    assert result.get(timeout=WAIT) == ["b", 1, 1]
