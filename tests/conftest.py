"""Fixtures for every test: leaked threads fail the test that leaked them."""

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
