"""Fixtures for every test: leaked threads fail the test that leaked them; facade tasks
stay in the test that declared them."""

import sys
import threading

import pytest

pytest_plugins = ["tests.support.redis_fixtures"]

#: Seconds a test's threads get to end after it: they are joined, not slept on, so a
#: passing test pays nothing; a thread still alive after this is a leak.
THREAD_JOIN_TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves threads running behind it."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leaked:
        thread.join(THREAD_JOIN_TIMEOUT)
    still_alive = [t.name for t in leaked if t.is_alive()]
    if still_alive:
        pytest.fail(f"threads leaked by the test: {still_alive}")


def _forget_shared_tasks_declared_meanwhile():
    """Forget the ``@app.task(shared=True)`` tasks declared until the generator resumes:
    as in Celery they would reach every app finalized later, so one test's ``job`` could
    run in another's app. (``@shared_task`` is left alone: the test projects' modules,
    imported once, declare theirs for every app made after.)"""
    state = sys.modules.get("spinach_compat._state")
    before = list(state._finalize_factories) if state is not None else None
    yield
    if state is not None and before is not None:
        state._finalize_factories[:] = before


@pytest.fixture(autouse=True, scope="module")
def facade_tasks_stay_in_their_module():
    """A module's facade tasks (its imports and module fixtures) stay in it."""
    yield from _forget_shared_tasks_declared_meanwhile()


@pytest.fixture(autouse=True)
def facade_tasks_stay_in_their_test(facade_tasks_stay_in_their_module):
    """A test's facade tasks stay in it."""
    yield from _forget_shared_tasks_declared_meanwhile()


def pytest_collection_finish(session):
    """The ``@app.task`` tasks test modules declared when imported stay in their apps: no
    other test's app is finalized with them (as it would be under Celery's sharing)."""
    state = sys.modules.get("spinach_compat._state")
    if state is not None:
        state._finalize_factories.clear()
