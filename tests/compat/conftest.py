"""Fixtures of the Celery facade tests: apps on the MemoryBroker with real worker threads."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest

import spinach_compat
from spinach_compat import _state, exceptions, signals, states

WAIT = 15.0  #: seconds a test waits for an expected event before failing

#: A project with its own pytest suite, run in subprocesses by test_testing_api.py.
collect_ignore = ["testing_proj"]

_names = itertools.count()


@pytest.fixture
def make_app() -> Iterator[Callable[..., spinach_compat.Celery]]:
    """Make facade apps (memory broker and backend by default); workers stopped at teardown."""
    apps: list[spinach_compat.Celery] = []
    previous = _state._current_app

    def make(main: str | None = None, **conf) -> spinach_compat.Celery:
        conf.setdefault("broker", "memory://")
        conf.setdefault("backend", "memory://")
        app = spinach_compat.Celery(main or f"compat{next(_names)}", **conf)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.stop_worker()
    _state._current_app = previous


@pytest.fixture
def app(make_app) -> spinach_compat.Celery:
    return make_app()


@pytest.fixture
def run_worker(app) -> Callable[..., None]:
    """Start the app's workers in background threads (stopped by ``make_app``)."""

    def start(concurrency: int = 2, target=None) -> None:
        (target or app).start_worker(concurrency=concurrency, block=False)

    return start


class Recorder:
    """Collects what signal receivers and hooks see; a test waits on it, never sleeps."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self._condition = threading.Condition()

    def add(self, *event) -> None:
        with self._condition:
            self.events.append(event)
            self._condition.notify_all()

    def wait_for(self, predicate: Callable[[list[tuple]], bool], timeout: float = WAIT) -> None:
        with self._condition:
            if not self._condition.wait_for(lambda: predicate(self.events), timeout):
                raise AssertionError(f"timed out; events so far: {self.events}")

    def named(self, name: str) -> list[tuple]:
        with self._condition:
            return [e for e in self.events if e[0] == name]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(params=["celery", "spinach_compat"])
def impl(request) -> SimpleNamespace:
    """Real Celery or the facade, with the same names, for tests run against both."""
    if request.param == "celery":
        celery = pytest.importorskip("celery")
        from celery import exceptions as c_exceptions
        from celery import signals as c_signals
        from celery import states as c_states

        return SimpleNamespace(
            name="celery", Celery=celery.Celery, Task=celery.Task, exceptions=c_exceptions,
            signals=c_signals, states=c_states,
        )  # fmt: skip
    return SimpleNamespace(
        name="spinach_compat", Celery=spinach_compat.Celery, Task=spinach_compat.Task,
        exceptions=exceptions, signals=signals, states=states,
    )  # fmt: skip


@pytest.fixture
def eager_app(impl) -> Iterator:
    """An eager app of ``impl`` (no broker involved), not made the current app."""
    previous = _state._current_app
    app = impl.Celery("eager", broker="memory://", set_as_current=False)
    app.conf.update(task_always_eager=True)
    yield app
    _state._current_app = previous
