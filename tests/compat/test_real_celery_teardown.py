"""Real Celery results left waiting are released while the session's Redis still runs
(``tests.support.redis_fixtures.release_dropped_clients``), not after it stopped."""

from __future__ import annotations

import gc
import weakref

import pytest
import redis

from tests.support.redis_fixtures import release_dropped_clients

celery = pytest.importorskip("celery")

CHANNEL = "celery-task-meta-never-sent"


def _leave_a_result_waiting(url: str) -> weakref.ref:
    """A real Celery client whose ``get()`` timed out, dropped: its result is still
    subscribed to its channel until the garbage collector frees them."""
    client = celery.Celery("teardown", broker=url, backend=url, set_as_current=False)
    result = client.AsyncResult("never-sent")
    with pytest.raises(celery.exceptions.TimeoutError):
        result.get(timeout=0.1)
    return weakref.ref(result)


@pytest.fixture
def no_automatic_collection():
    """The garbage collector runs only when called, so the test sees what it frees."""
    gc.disable()
    yield
    gc.enable()


def test_a_dropped_client_s_waiting_result_is_released_by_the_fixture(
    redis_url, no_automatic_collection
):
    dropped = _leave_a_result_waiting(redis_url)
    with redis.Redis.from_url(redis_url) as admin:
        assert dropped() is not None  # in a reference cycle: not freed by its last reference
        assert admin.pubsub_numsub(CHANNEL) == [(CHANNEL.encode(), 1)]

        release_dropped_clients()

        assert dropped() is None
        assert admin.pubsub_numsub(CHANNEL) == [(CHANNEL.encode(), 0)]  # unsubscribed
