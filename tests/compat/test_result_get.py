"""``get()``'s arguments as Celery's: ignored results, parents, callbacks, sync subtasks.

Tests taking ``impl`` run against real Celery and the facade on stored states (Celery's
``cache+memory://`` backend, the facade's ``memory://``) or in eager mode, no worker.
"""

from __future__ import annotations

import importlib
import threading
import uuid

import pytest

from spinach_compat import chain, states
from spinach_compat.exceptions import UnsupportedFeature
from spinach_compat.result import GroupResult, allow_join_result

from .conftest import WAIT


def ids(count: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(count)]


@pytest.fixture
def stored_app(impl, make_app):
    """An app of ``impl`` with a result backend in this process, and no worker."""
    if impl.name == "spinach_compat":
        return make_app()
    return impl.Celery(
        "stored", broker="memory://", backend="cache+memory://", set_as_current=False
    )


@pytest.fixture
def result_module(impl):
    return importlib.import_module(f"{impl.name}.result")


# -- ignore_result ------------------------------------------------------------------------


def test_get_of_an_ignored_result_returns_none_at_once(stored_app):
    @stored_app.task(ignore_result=True)
    def quiet():
        return 1

    @stored_app.task
    def loud():
        return 1

    for result in (quiet.delay(), loud.apply_async(ignore_result=True)):
        assert result.get(timeout=1) is None  # nothing will ever be stored: no waiting
        assert result.ignored
        assert (result.state, result.ready()) == ("PENDING", False)
    assert not quiet.apply_async(ignore_result=False).ignored
    assert not loud.delay().ignored


def test_send_task_takes_the_registered_tasks_ignore_result(app):
    """Celery's ``send_task`` only reads the option (its ``get()`` would wait forever)."""

    @app.task(ignore_result=True)
    def quiet():
        return 1

    assert app.send_task(quiet.name).ignored
    assert not app.send_task(quiet.name, ignore_result=False).ignored
    assert not app.send_task("unknown.task").ignored


# -- following parents --------------------------------------------------------------------


def test_get_raises_the_first_failed_parent(stored_app, impl):
    root, middle, leaf = ids(3)
    stored_app.backend.mark_as_failure(root, ValueError("boom"))
    stored_app.backend.mark_as_failure(middle, KeyError("later"))
    parents = stored_app.AsyncResult(middle, parent=stored_app.AsyncResult(root))
    result = stored_app.AsyncResult(leaf, parent=parents)

    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=1)
    for options in ({"follow_parents": False}, {"propagate": False}):
        with pytest.raises(impl.exceptions.TimeoutError):
            result.get(timeout=0.2, interval=0.1, **options)


def test_a_failed_group_parent_is_raised(stored_app, result_module):
    done, failed, body = ids(3)
    stored_app.backend.mark_as_done(done, 1)
    stored_app.backend.mark_as_failure(failed, ValueError("member"))
    members = [stored_app.AsyncResult(done), stored_app.AsyncResult(failed)]
    header = result_module.GroupResult(ids(1)[0], members, app=stored_app)
    with pytest.raises(ValueError, match="member"):
        stored_app.AsyncResult(body, parent=header).get(timeout=1)


def test_a_parent_failing_while_waiting_is_raised(stored_app):
    parent, child = ids(2)
    calls = []

    def on_interval(*args):  # the parents are checked first, then on_interval gets None
        calls.append(args)
        stored_app.backend.mark_as_failure(parent, ValueError("late"))

    result = stored_app.AsyncResult(child, parent=stored_app.AsyncResult(parent))
    with pytest.raises(ValueError, match="late"):
        result.get(timeout=WAIT, interval=0.1, on_interval=on_interval)
    assert calls == [(None,)]


def test_a_chain_whose_first_task_fails_raises_without_waiting_for_the_last(app, run_worker):
    @app.task
    def fail():
        raise ValueError("boom")

    @app.task
    def add(a, b):
        return a + b

    run_worker()
    with pytest.raises(ValueError, match="boom"):
        chain(fail.s(), add.s(1)).apply_async().get(timeout=WAIT)


def test_a_parent_failing_while_waiting_on_redis_is_raised(make_app, redis_url):
    app = make_app(broker=redis_url, backend=redis_url)
    parent, child = ids(2)

    def on_interval(_):
        app.backend.mark_as_failure(parent, ValueError("late"))

    result = app.AsyncResult(child, parent=app.AsyncResult(parent))
    with pytest.raises(ValueError, match="late"):
        result.get(timeout=WAIT, interval=0.1, on_interval=on_interval)


# -- callback, on_interval, on_message ----------------------------------------------------


def test_callback_gets_the_id_and_value(stored_app):
    ok, bad = ids(2)
    stored_app.backend.mark_as_done(ok, 3)
    stored_app.backend.mark_as_failure(bad, ValueError("x"))
    seen = []

    def callback(*args):
        seen.append(args)

    assert stored_app.AsyncResult(ok).get(timeout=WAIT, callback=callback) == 3
    failure = stored_app.AsyncResult(bad).get(timeout=WAIT, propagate=False, callback=callback)
    with pytest.raises(ValueError):  # raised before the callback
        stored_app.AsyncResult(bad).get(timeout=WAIT, callback=callback)
    assert seen == [(ok, 3), (bad, failure)] and isinstance(failure, ValueError)


def test_on_interval_is_called_once_while_waiting(stored_app, impl):
    ready, pending = ids(2)
    calls = []

    def on_interval(*args):
        calls.append(args)
        stored_app.backend.mark_as_done(ready, 7)

    assert (
        stored_app.AsyncResult(ready).get(timeout=WAIT, interval=0.1, on_interval=on_interval) == 7
    )
    with pytest.raises(impl.exceptions.TimeoutError):  # once only, as Celery's promise
        stored_app.AsyncResult(pending).get(timeout=0.5, interval=0.1, on_interval=on_interval)
    assert calls == [(), ()]


def test_on_message_is_refused(app):
    app.backend.mark_as_done("t", 1)
    for result in (app.AsyncResult("t"), GroupResult("g", [app.AsyncResult("t")], app=app)):
        with pytest.raises(UnsupportedFeature, match="on_message"):
            result.get(timeout=WAIT, on_message=print)


def test_an_eager_result_ignores_the_callback(eager_app):
    @eager_app.task
    def add(a, b):
        return a + b

    seen = []
    assert add.delay(1, 2).get(callback=lambda *args: seen.append(args)) == 3
    assert seen == []


# -- results read together ----------------------------------------------------------------


def test_a_result_set_calls_back_each_result_in_order(stored_app, result_module):
    first, second = ids(2)
    stored_app.backend.mark_as_done(first, 1)
    stored_app.backend.mark_as_done(second, 2)
    results = [stored_app.AsyncResult(first), stored_app.AsyncResult(second)]
    result_set = result_module.ResultSet(results, app=stored_app)
    seen = []
    assert result_set.join(timeout=WAIT, callback=lambda *args: seen.append(args)) == []
    assert seen == [(first, 1), (second, 2)]
    assert result_set.get(timeout=0) == [1, 2]  # a spent timeout still reads each once


def test_result_set_get_with_a_callback_returns_none_as_on_redis(app):
    app.backend.mark_as_done("t", 1)
    seen = []
    group_result = GroupResult("g", [app.AsyncResult("t")], app=app)
    assert group_result.get(timeout=WAIT, callback=lambda *args: seen.append(args)) is None
    assert seen == [("t", 1)]


# -- never get() within a task ------------------------------------------------------------


def test_joining_is_denied_where_celery_denies_it(eager_app, result_module):
    @eager_app.task
    def add(a, b):
        return a + b

    result, group_result = add.apply((1, 2)), result_module.GroupResult("g", [add.apply((2, 2))])
    with result_module.denied_join_result():
        for denied in (result, group_result):
            with pytest.raises(RuntimeError, match=r"Never call result.get\(\) within a task"):
                denied.get()
        assert result.get(disable_sync_subtasks=False) == 3
        assert group_result.join(disable_sync_subtasks=False) == [4]
        with result_module.allow_join_result():
            assert result.get() == 3


def test_get_within_a_worker_task_raises(app, run_worker):
    @app.task
    def inner():
        return 1

    @app.task
    def outer(how):
        try:
            if how == "eager":
                return inner.apply().get()
            if how == "allowed":
                with allow_join_result():
                    return inner.delay().get(timeout=WAIT)
            return inner.delay().get(timeout=WAIT, disable_sync_subtasks=how == "plain")
        except RuntimeError as exc:
            return str(exc)

    run_worker(concurrency=2)
    got = [outer.delay(how).get(timeout=WAIT) for how in ("plain", "eager", "not", "allowed")]
    assert [value if value == 1 else value.splitlines()[0] for value in got] == [
        "Never call result.get() within a task!", "Never call result.get() within a task!", 1, 1,
    ]  # fmt: skip


# -- the memory backend -------------------------------------------------------------------


class WatchedLock:
    """A reentrant lock that sets ``contended`` when a thread has to wait for it."""

    def __init__(self, contended: threading.Event):
        self._lock = threading.RLock()
        self._contended = contended
        self._is_owned = self._lock._is_owned  # what Condition needs of its lock
        self._release_save = self._lock._release_save
        self._acquire_restore = self._lock._acquire_restore

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        self._contended.set()
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


def test_a_success_stored_while_a_revoke_is_stored_is_kept(app):
    """The revoke reads the stored state; a task's SUCCESS is stored right then, from
    another thread: it must wait for the revoke's write, or be refused by it."""
    backend, (task_id,) = app.backend, ids(1)
    progress = threading.Event()  # the success was stored, or it waits for the lock
    store = backend.broker._store  # the memory broker's, where its shared state lives
    store.lock = WatchedLock(progress)
    store.published = threading.Condition(store.lock)

    def store_success():
        backend.mark_as_done(task_id, "done")
        progress.set()

    success = threading.Thread(target=store_success)
    read = store.shared._get

    def read_then_race(key, kind, now):
        value = read(key, kind, now)
        if success.ident is None:  # the revoke's read, not the success's own
            success.start()
            assert progress.wait(WAIT)
        return value

    store.shared._get = read_then_race
    backend.mark_as_revoked(task_id)
    success.join(WAIT)
    assert backend.get_state(task_id) == states.SUCCESS


def test_an_eager_task_waiting_on_another_raises_as_celerys(eager_app):
    app = eager_app

    @app.task
    def inner():
        return 1

    @app.task
    def outer():
        return inner.delay().get()

    with pytest.raises(RuntimeError, match=r"Never call result\.get"):
        outer.delay().get()
    chained = (inner.si() | inner.si()).apply_async()  # a chain may join its steps
    assert chained.get() == 1
