"""Result backends (memory and Redis) and AsyncResult."""

from __future__ import annotations

import threading

import pytest
import redis

from spinach.brokers.redis import RedisBroker
from spinach.testing import FakeClock
from spinach_compat import states
from spinach_compat.backends import KeyValueBackend
from spinach_compat.exceptions import TimeoutError

from .conftest import WAIT


class CustomError(Exception):
    pass


@pytest.fixture(params=["memory", "redis"])
def result_app(request, make_app):
    if request.param == "memory":
        return make_app()
    url = request.getfixturevalue("redis_url")
    return make_app(broker=url, backend=url)


def test_unknown_id_is_pending(result_app):
    result = result_app.AsyncResult("nobody")
    assert (result.state, result.result, result.ready()) == ("PENDING", None, False)


def test_success_is_never_overwritten(result_app):
    backend = result_app.backend
    backend.mark_as_done("t", {"v": 1})
    backend.mark_as_failure("t", ValueError("late"))
    backend.store_result("t", None, states.STARTED)
    result = result_app.AsyncResult("t")
    assert (result.state, result.get(timeout=WAIT)) == ("SUCCESS", {"v": 1})


def test_exceptions_stored_as_json_and_rebuilt(result_app):
    result_app.backend.mark_as_failure("t", CustomError("boom", 2), "Traceback...")
    raw = result_app.backend.get_task_meta("t")["result"]
    assert raw == {"exc_type": "CustomError", "exc_message": ["boom", 2], "exc_module": __name__}
    result = result_app.AsyncResult("t")
    with pytest.raises(CustomError) as caught:
        result.get(timeout=WAIT)
    assert caught.value.args == ("boom", 2)
    assert isinstance(result.get(propagate=False), CustomError)
    assert result.traceback == "Traceback..."
    assert result.failed()


def test_unknown_exception_module_gets_a_stand_in(result_app):
    data = {"exc_type": "Gone", "exc_message": ["x"], "exc_module": "not.loaded.module"}
    exc = result_app.backend.exception_to_python(data)
    assert type(exc).__name__ == "Gone" and exc.args == ("x",)


def test_get_times_out(result_app):
    with pytest.raises(TimeoutError):
        result_app.AsyncResult("never").get(timeout=0.05)


def test_get_is_woken_by_the_store(result_app):
    result = result_app.AsyncResult("later")
    started = threading.Event()
    got = []

    def wait():
        started.set()
        got.append(result.get(timeout=WAIT, interval=WAIT))

    waiter = threading.Thread(target=wait)
    waiter.start()
    started.wait(WAIT)
    result_app.backend.mark_as_done("later", 42)
    waiter.join(WAIT)
    assert got == [42]


def test_forget(result_app):
    result_app.backend.mark_as_done("t", 1)
    result_app.AsyncResult("t").forget()
    assert result_app.AsyncResult("t").state == "PENDING"


def test_end_to_end_through_a_worker(result_app):
    @result_app.task
    def square(x):
        return x * x

    result_app.start_worker(concurrency=1, block=False)
    assert square.delay(7).get(timeout=WAIT) == 49


def test_redis_key_and_ttl(make_app, redis_url, redis_server):
    app = make_app(main="ttlapp", broker=redis_url, backend=redis_url, result_expires=120)
    app.backend.mark_as_done("abc", 1)
    with redis_server.client() as client:
        assert 0 < client.ttl("{ttlapp}/result/abc") <= 120


def test_disabled_backend_refuses_reads(make_app):
    app = make_app(backend=None)
    with pytest.raises(NotImplementedError, match="result backend"):
        app.AsyncResult("x").get()


# -- waiting on Redis: one subscriber connection per thread -----------------------------


@pytest.fixture
def redis_app(make_app, redis_url):
    return make_app(broker=redis_url, backend=redis_url)


def wait_in_thread(app, task_id: str) -> tuple[threading.Thread, list, threading.Event]:
    """A thread waiting on ``task_id``'s result; what it got; set once it subscribed."""
    got: list = []
    subscribed = threading.Event()
    watchers = app.backend.broker.watchers
    listener = watchers.listener

    def subscribed_listener():
        made = listener()
        subscribe = made.subscribe

        def subscribe_and_tell(*args):
            subscribe(*args)
            subscribed.set()

        made.subscribe = subscribe_and_tell
        return made

    def wait():
        watchers.listener = subscribed_listener
        got.append(app.AsyncResult(task_id).get(timeout=WAIT))

    thread = threading.Thread(target=wait)
    thread.start()
    return thread, got, subscribed


def test_a_wait_skips_states_that_are_not_ready(redis_app):
    thread, got, subscribed = wait_in_thread(redis_app, "slow")
    assert subscribed.wait(WAIT)

    redis_app.backend.store_result("slow", None, states.STARTED)
    redis_app.backend.mark_as_done("slow", "done")
    thread.join(WAIT)

    assert got == ["done"]


def test_waits_in_many_threads_each_get_their_result(redis_app):
    waiters = [wait_in_thread(redis_app, f"id-{i}") for i in range(4)]
    for _, _, subscribed in waiters:
        assert subscribed.wait(WAIT)

    for i in reversed(range(4)):
        redis_app.backend.mark_as_done(f"id-{i}", i)
    for thread, _, _ in waiters:
        thread.join(WAIT)

    assert [got for _, got, _ in waiters] == [[0], [1], [2], [3]]


def test_a_thread_keeps_its_subscriber_across_waits(redis_app):
    backend = redis_app.backend
    backend.mark_as_done("ready", 1)
    assert redis_app.AsyncResult("ready").get(timeout=WAIT) == 1
    listener = backend.broker.watchers.listener()

    with pytest.raises(TimeoutError):
        redis_app.AsyncResult("never").get(timeout=0.05)
    assert redis_app.AsyncResult("ready").get(timeout=WAIT) == 1

    assert backend.broker.watchers.listener() is listener


def test_a_killed_subscriber_connection_is_replaced(redis_app, redis_server):
    redis_app.backend.mark_as_done("ready", 1)
    assert redis_app.AsyncResult("ready").get(timeout=WAIT) == 1
    with redis_server.client() as admin:
        admin.client_kill_filter(_type="normal", skipme=True)
        admin.client_kill_filter(_type="pubsub", skipme=True)

    thread, got, subscribed = wait_in_thread(redis_app, "after-kill")
    assert subscribed.wait(WAIT)
    redis_app.backend.mark_as_done("after-kill", 2)
    thread.join(WAIT)

    assert got == [2]
    assert redis_app.AsyncResult("ready").get(timeout=WAIT) == 1


def test_a_connection_lost_after_the_result_came_costs_only_the_listener(redis_app):
    backend = redis_app.backend
    backend.mark_as_done("ready", 1)
    listener = backend.broker.watchers.listener()

    def lost(*channels):
        raise redis.ConnectionError("lost while leaving the channels")

    listener.pubsub.unsubscribe = lost

    assert redis_app.AsyncResult("ready").get(timeout=WAIT) == 1
    assert backend.broker.watchers.listener() is not listener


# -- idle subscriber connections are closed -----------------------------------------------


@pytest.fixture
def clocked_backend(redis_app, redis_url):
    clock = FakeClock(start=1000.0)
    broker = RedisBroker(redis_url, clock=clock)
    broker.set_namespace(redis_app.namespace)
    return KeyValueBackend(redis_app, broker), clock


def wait_then_linger(backend, task_id: str) -> tuple[threading.Thread, threading.Event, list]:
    """A thread that waits once, then stays alive (a request thread of a pool) until told."""
    done, leave, listeners = threading.Event(), threading.Event(), []

    def run():
        backend.wait_for(task_id, timeout=WAIT)
        listeners.append(backend.broker.watchers.listener())
        done.set()
        leave.wait(WAIT)
        listeners.append(backend.wait_for(task_id, timeout=WAIT))  # connects again

    thread = threading.Thread(target=run)
    thread.start()
    assert done.wait(WAIT)
    return thread, leave, listeners


def test_a_listener_unused_for_its_idle_timeout_is_closed(clocked_backend):
    backend, clock = clocked_backend
    backend.mark_as_done("ready", 1)
    thread, leave, listeners = wait_then_linger(backend, "ready")
    assert listeners[0].pubsub.connection is not None

    clock.advance(backend.broker.watchers.idle_timeout + 1)
    assert backend.wait_for("ready", timeout=WAIT)["result"] == 1  # this wait closes it

    assert listeners[0].pubsub.connection is None
    leave.set()
    thread.join(WAIT)
    assert listeners[1]["result"] == 1


def test_a_listener_used_recently_or_waiting_is_kept(clocked_backend):
    backend, clock = clocked_backend
    backend.mark_as_done("ready", 1)
    thread, leave, listeners = wait_then_linger(backend, "ready")

    clock.advance(backend.broker.watchers.idle_timeout - 1)
    backend.wait_for("ready", timeout=WAIT)
    assert listeners[0].pubsub.connection is not None  # not idle long enough

    with listeners[0].in_use():  # as during a wait of its thread
        clock.advance(backend.broker.watchers.idle_timeout + 1)
        backend.wait_for("ready", timeout=WAIT)
        assert listeners[0].pubsub.connection is not None
    leave.set()
    thread.join(WAIT)


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_get_with_no_time_left_answers_from_what_is_stored(backend, app, redis_app):
    app = redis_app if backend == "redis" else app
    app.backend.mark_as_done("done", 1)

    assert app.AsyncResult("done").get(timeout=0) == 1
    with pytest.raises(TimeoutError):
        app.AsyncResult("pending").get(timeout=0)


# -- which broker keeps the results ---------------------------------------------------------


@pytest.mark.parametrize("url", ["memory://", "cache+memory://", "redis"])
def test_results_share_the_app_s_broker_when_they_name_its_storage(make_app, url, request):
    if url == "redis":
        url = request.getfixturevalue("redis_url")
    broker_url = "memory://" if "memory" in url else url
    app = make_app(broker=broker_url, backend=url)
    assert app.backend.broker is app.engine.broker


def test_results_on_another_storage_get_a_broker_of_their_own(make_app, redis_url, redis_server):
    app = make_app(main="split", broker="memory://", backend=redis_url)

    @app.task
    def double(x):
        return 2 * x

    assert app.backend.broker is not app.engine.broker
    app.start_worker(concurrency=1, block=False)
    result = double.delay(21)
    assert result.get(timeout=WAIT) == 42
    with redis_server.client() as client:
        assert client.exists(f"{{split}}/result/{result.id}")


def test_memory_results_beside_a_redis_broker_stay_in_the_process(make_app, redis_url):
    app, other = (make_app(main="mem", broker=redis_url, backend="memory://") for _ in "ab")
    assert app.backend.broker is not app.engine.broker
    app.backend.mark_as_done("t", 1)
    assert app.AsyncResult("t").get(timeout=WAIT) == 1
    assert other.AsyncResult("t").state == "PENDING"  # same namespace, not in Redis
