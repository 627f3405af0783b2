"""The app's lifecycle signals and ``add_periodic_task``, on real Celery and on the facade;
the facade's beat running those entries once per period with two workers on Redis."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from spinach.brokers.redis import RedisBroker
from spinach.testing import FakeClock
from spinach_compat.app import beat
from spinach_compat.app.engine import compat_engine
from tests.helpers import wait_until

from .conftest import WAIT

#: Real Celery finalizing an app registers the tasks every earlier test declared with
#: ``@app.task`` (shared with every app, in Celery), warning about their names and options.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Task name .* is already registered"),
    pytest.mark.filterwarnings(r"ignore:(?s).*'priority' task attribute is deprecated"),
]


@pytest.fixture
def crontab(impl):
    if impl.name == "celery":
        from celery.schedules import crontab
    else:
        from spinach_compat.schedules import crontab
    return crontab


@pytest.fixture
def fresh_app(impl) -> Iterator:
    """A new app of ``impl``, not made the current app."""
    yield impl.Celery("lifecycle", broker="memory://", set_as_current=False)


def _record(app, events: list) -> None:
    """Connect receivers of the four app signals appending (name, sorted kwargs names)."""
    for name in ("on_configure", "on_after_configure", "on_after_finalize", "on_after_fork"):

        def receiver(sender, name=name, **kwargs):
            assert sender is app
            events.append((name, sorted(kwargs)))

        getattr(app, name).connect(receiver, weak=False)


def test_signals_are_sent_when_the_app_is_configured_then_finalized(fresh_app):
    app, events = fresh_app, []
    _record(app, events)
    app.config_from_object({"task_default_queue": "jobs"})
    app.conf.update(result_expires=60)  # setting values reads nothing
    app.conf.beat_schedule = {}

    @app.task
    def declared():
        return 1

    assert events == []  # declaring a task neither configures nor finalizes
    assert app.conf.task_default_queue == "jobs"
    assert events == [
        ("on_configure", ["signal"]), ("on_after_configure", ["signal", "source"]),
    ]  # fmt: skip
    assert declared.name in app.tasks  # the first access finalizes
    app.finalize()
    _ = app.tasks
    assert events[2:] == [("on_after_finalize", ["signal"])]


def test_a_receiver_connected_after_tasks_at_import_still_fires(fresh_app):
    """The layout of Celery's periodic tasks guide, the receiver after the tasks."""
    app, calls = fresh_app, []

    @app.task
    def test(arg):
        return arg

    app.conf.timezone = "UTC"

    @app.on_after_configure.connect
    def setup_periodic_tasks(sender, **kwargs):
        calls.append("configured")
        sender.add_periodic_task(10.0, test.s("hello"), name="add every 10")

    @app.on_after_finalize.connect
    def when_finalized(sender, **kwargs):
        calls.append("finalized")

    assert calls == []
    assert set(app.conf.beat_schedule) == {"add every 10"}
    assert "finalized" not in calls
    app.finalize()
    app.finalize()
    assert calls == ["configured", "finalized"]


def test_send_task_by_name_does_not_finalize_the_app(fresh_app):
    """Celery looks a name up in the raw registry: sending it leaves the app unfinalized."""
    app, events = fresh_app, []
    _record(app, events)
    app.send_task("elsewhere.remote", args=(1,))
    assert ("on_after_finalize", ["signal"]) not in events
    app.finalize()
    assert events[-1] == ("on_after_finalize", ["signal"])


def _entries(app) -> dict:
    def schedule(value):
        return repr(value) if type(value).__name__ == "crontab" else value

    return {
        key: (entry["task"], schedule(entry["schedule"]), tuple(entry["args"]),
              entry["kwargs"], entry["options"])
        for key, entry in app.conf.beat_schedule.items()
    }  # fmt: skip


def test_add_periodic_task_makes_celerys_entries(fresh_app, crontab):
    app = fresh_app

    @app.task
    def ping(*args, **kwargs):
        return args

    @app.on_after_finalize.connect
    def setup(sender, **kwargs):
        sender.add_periodic_task(10.0, ping.s("hello"), name="every 10")
        sender.add_periodic_task(crontab(hour=7, minute=30, day_of_week=1), ping.s("monday"))
        sender.add_periodic_task(timedelta(seconds=30), ping, args=(1,), kwargs={"k": 2},
                                 expires=5)  # fmt: skip
        sender.add_periodic_task(60, ping.s(0, k=1).set(queue="q"), args=(9,), kwargs={"j": 3})

    _ = app.tasks
    name = ping.name
    assert _entries(app) == {
        "every 10": (name, 10.0, ("hello",), {}, {}),
        f"{name}('monday')": (
            name, "<crontab: 30 7 * * 1 (m/h/dM/MY/d)>", ("monday",), {}, {},
        ),
        f"{name}(1, k=2)": (name, timedelta(seconds=30), (1,), {"k": 2}, {"expires": 5}),
        f"{name}(9, 0, k=1, j=3)": (name, 60, (9, 0), {"k": 1, "j": 3}, {"queue": "q"}),
    }  # fmt: skip


def test_add_periodic_task_after_configuration_is_added_at_once(fresh_app):
    app = fresh_app

    @app.task
    def ping():
        return None

    assert app.conf.beat_schedule == {}
    key = app.add_periodic_task(5, ping.s())
    assert key == f"{ping.name}()"
    assert list(app.conf.beat_schedule) == [key]
    other = fresh_app.__class__("other", broker="memory://", set_as_current=False)
    assert other.conf.beat_schedule == {}  # the defaults' dict is not shared


# -- the facade's beat runs the entries ------------------------------------------------------


def test_entries_of_add_periodic_task_become_native_periodic_tasks(make_app):
    app = make_app()

    @app.task
    def ping():
        return None

    @app.on_after_finalize.connect
    def setup(sender, **kwargs):
        sender.add_periodic_task(30, ping.s(), name="half-minute")

    assert app.register_beat_schedule() == [beat.BEAT_PREFIX + "half-minute"]
    native = app._native.get(beat.BEAT_PREFIX + "half-minute")
    assert native.periodicity == timedelta(seconds=30)


def test_two_workers_fire_the_seconds_entry_once_per_period(make_app, redis_url):
    """Two workers (apps of one namespace) on Redis, both running beat, on a fake clock
    (an hour ahead: the tasks beat sends, stamped with the real time, are due at once)."""
    start = float(int(time.time())) + 3600
    clock, runs, ran = FakeClock(start=start), [], threading.Condition()
    apps = [make_app("twobeats", broker=redis_url, backend=redis_url) for _ in range(2)]
    for app in apps:
        _periodic_app(app, clock, runs, ran)
    brokers = [app.engine.broker for app in apps]
    for app in apps:
        app.start_worker(concurrency=1, block=False)
    for period in range(3):  # due at start, then after each period
        _wait_for(ran, lambda n=period + 1: len(runs) >= n)
        assert wait_until(lambda: _settled(brokers[0]))
        clock.advance(5)
        for broker in brokers:
            broker.notify_local()
    _wait_for(ran, lambda: len(runs) >= 4)
    assert [broker.move_future_jobs() for broker in brokers] == [0, 0]  # nothing due twice
    assert wait_until(lambda: _settled(brokers[0]))
    for app in apps:
        app.stop_worker()
    assert runs == [start + 5 * period for period in range(4)]


def _periodic_app(app, clock: FakeClock, runs: list, ran: threading.Condition) -> None:
    """The same task module and receiver in each worker; its engine on the fake clock."""

    @app.task(name="twobeats.tick")
    def tick():
        with ran:
            runs.append(clock())
            ran.notify_all()

    def setup(sender, **kwargs):
        sender.add_periodic_task(5.0, tick.s(), name="every 5 seconds")

    app.on_after_finalize.connect(setup, weak=False)
    broker = RedisBroker(app.conf.broker_url, clock=clock)
    app._engine = compat_engine(broker, app.namespace)
    app._engine.attach_tasks(app._native)


def _settled(broker) -> bool:
    """No job queued or running in the namespace."""
    return not any(broker.queue_lengths().values()) and not any(broker.running_jobs().values())


def _wait_for(condition: threading.Condition, predicate) -> None:
    with condition:
        assert condition.wait_for(predicate, WAIT), "timed out"


# -- on_after_fork -------------------------------------------------------------------------


def test_on_after_fork_is_sent_in_a_forked_child(make_app):
    app = make_app()
    read_end, write_end = os.pipe()

    @app.on_after_fork.connect
    def reset(sender, **kwargs):
        os.write(write_end, b"child" if sender is app else b"other")

    pid = os.fork()
    if pid == 0:  # the child: the hook ran already; leave at once
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read() == b"child"
    assert os.waitstatus_to_exitcode(status) == 0


# -- the worker command: a receiver in a task module it imports --------------------------------

TASKS_MODULE = """
from spinach_compat import current_app, shared_task


@shared_task
def hourly():
    return "tick"


@current_app.on_after_finalize.connect
def setup_periodic_tasks(sender, **kwargs):
    sender.add_periodic_task(3600, hourly.s(), name="hourly report")
"""


def test_the_worker_finalizes_after_importing_the_task_modules(app, tmp_path, monkeypatch):
    """A receiver connected by a module of ``include`` fires when the worker starts, and
    its entry becomes a native periodic task before the workers run."""
    from spinach_compat import signals
    from spinach_compat.worker import Worker

    (tmp_path / "periodic_tasks_mod.py").write_text(TASKS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "periodic_tasks_mod", raising=False)
    app.conf.include = ["periodic_tasks_mod"]
    ready = threading.Event()

    def on_ready(sender=None, **kwargs):
        ready.set()

    signals.worker_ready.connect(on_ready, weak=False)
    worker = Worker(app, concurrency=1, quiet=True)
    thread = threading.Thread(target=worker.start, name="finalize-worker")
    thread.start()
    try:
        assert ready.wait(WAIT), "the worker did not become ready"
    finally:
        worker.stop()
        thread.join(WAIT)
        signals.worker_ready.disconnect(on_ready)
    assert app.conf.beat_schedule["hourly report"]["task"] == "periodic_tasks_mod.hourly"
    assert beat.BEAT_PREFIX + "hourly report" in app._native


def test_on_configure_as_a_method_of_an_app_subclass_is_called(impl):
    """Celery 3's style, still honoured by Celery: ``on_configure`` overridden."""
    calls = []

    class App(impl.Celery):
        def on_configure(self):
            calls.append("configure")

    app = App("subclassed", broker="memory://", set_as_current=False)
    assert calls == []
    assert app.conf.task_default_queue == "celery"
    assert calls == ["configure"]
