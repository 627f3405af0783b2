"""Locks a forked child inherits held: a thread of the parent held them at the fork, and
that thread does not exist in the child, so the child gets fresh ones (``spinach.forks``).

Each test holds a lock in a thread, forks, and has the child take the lock; the child's
exit status says whether it could (a child stuck on the lock is killed after a timeout).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from spinach import Engine, MemoryBroker
from spinach.brokers.redis import RedisBroker
from spinach.contrib.job_tally import Tallies
from spinach.contrib.prometheus import BrokerCollector, JobMetrics
from spinach.job import Job
from spinach.job_logs import JobLogCapture
from spinach_compat import _state
from spinach_compat.interop import legacy

#: Seconds the child waits for a lock before giving up (a safety net: a fresh lock is free).
CHILD_WAIT = 5.0
#: Seconds the parent waits for the child to exit before killing it.
PARENT_WAIT = 30.0

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@contextmanager
def held(lock: Callable[[], threading.Lock | threading.RLock]) -> Iterator[None]:
    """``lock()`` held by another thread for the duration."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock():
            taken.set()
            done.wait()

    thread = threading.Thread(target=hold, name="lock-holder")
    thread.start()
    try:
        assert taken.wait(PARENT_WAIT)
        yield
    finally:
        done.set()
        thread.join()


def in_child(check: Callable[[], bool]) -> bool:
    """Fork; whether ``check()`` is true in the child, in time (a watchdog kills a child
    still running after ``PARENT_WAIT`` seconds)."""
    pid = os.fork()
    if pid == 0:  # the child: no pytest from here on, only the exit status
        try:
            os._exit(0 if check() else 1)
        finally:
            os._exit(2)
    watchdog = threading.Timer(PARENT_WAIT, os.kill, (pid, signal.SIGKILL))
    watchdog.start()
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        watchdog.cancel()
        watchdog.join()
    return os.waitstatus_to_exitcode(status) == 0


def child_can_take(lock: Callable[[], threading.Lock | threading.RLock]) -> bool:
    """Fork; whether the child takes ``lock()`` (as the child sees it) in time."""
    return in_child(lambda: lock().acquire(timeout=CHILD_WAIT))


@pytest.mark.parametrize("partitions", [1, 3])
@pytest.mark.parametrize("name", ["_calls_lock", "_fetch_lock", "_handed_lock"])
def test_a_redis_broker_s_locks_are_free_in_a_forked_child(
    redis_broker_factory, partitions: int, name: str
) -> None:
    broker: RedisBroker = redis_broker_factory(partitions=partitions)
    brokers = [broker, *getattr(broker, "partitions", [])]
    for one in brokers:
        with held(lambda one=one: getattr(one, name)):
            assert child_can_take(lambda one=one: getattr(one, name))


def test_the_facade_s_module_locks_are_free_in_a_forked_child() -> None:
    for module in (_state, legacy):
        with held(lambda module=module: module._lock):
            assert child_can_take(lambda module=module: module._lock)


def test_the_legacy_connections_are_forgotten_in_a_forked_child() -> None:
    legacy._connections["redis://parent"] = object()  # type: ignore[assignment]
    try:
        assert in_child(lambda: not legacy._connections)
    finally:
        legacy._connections.pop("redis://parent")


# -- long-lived objects: the child uses them while a parent's thread held their lock --------


def test_an_engine_is_usable_in_a_forked_child() -> None:
    engine = Engine(MemoryBroker(), namespace="parent")

    def rename() -> bool:
        engine.namespace = "child"
        return engine.namespace == "child"

    with held(lambda: engine._state_lock):
        assert in_child(rename)


def test_a_memory_broker_is_usable_in_a_forked_child() -> None:
    broker = MemoryBroker()
    broker.set_namespace("forks")

    def enqueue() -> bool:
        broker.enqueue_jobs([Job("task", "q", broker.now(), 0)])
        return broker.queue_lengths() == {"q": 1}

    with held(lambda: broker._store.lock):
        assert in_child(enqueue)


def test_a_redis_broker_s_outage_log_is_usable_in_a_forked_child(redis_broker_factory) -> None:
    broker: RedisBroker = redis_broker_factory()
    hidden = broker.hidden_retries

    def outage() -> bool:
        hidden.failed(ConnectionError("lost"))
        hidden.succeeded()
        return not hidden.ongoing and broker.queue_lengths() == {}

    with held(lambda: hidden._lock):
        assert in_child(outage)


def test_a_redis_broker_watches_in_a_forked_child_while_a_parent_s_thread_watched(
    redis_broker_factory,
) -> None:
    """A listener busy in a parent's thread is never used by the child: each thread of
    each process makes its own (``Listener.pid``)."""
    broker: RedisBroker = redis_broker_factory()

    def watch() -> bool:
        with broker.watch(["child"], timeout=CHILD_WAIT) as watching:
            broker.publish_value("child", b"1", None)
            heard = watching.next(CHILD_WAIT)
        broker.watchers.close_all()
        return heard == ("child", b"1")

    with held(lambda: broker.watchers.listener()._lock):
        assert in_child(watch)


def test_a_job_log_capture_s_lock_is_free_in_a_forked_child() -> None:
    """A job thread may fork (``multiprocessing``) and log in the child."""
    capture = JobLogCapture(10, 1000)
    with held(lambda: capture._held_lock):
        assert child_can_take(lambda: capture._held_lock)


def test_the_metrics_tallies_lock_is_free_in_a_forked_child() -> None:
    tallies = Tallies(3, 3)
    with held(lambda: tallies._adding):
        assert child_can_take(lambda: tallies._adding)


def test_the_prometheus_metrics_are_collected_in_a_forked_child() -> None:
    """Ours only: prometheus-client's own locks are not reset in a child (its metrics are
    not meant to be shared across a fork; see its multiprocess mode)."""
    metrics, broker = JobMetrics(), MemoryBroker()
    broker.set_namespace("forks")
    collector = BrokerCollector(broker)
    with held(lambda: metrics._folding), held(lambda: collector._lock):
        assert in_child(lambda: bool(list(metrics.registry.collect()) and
                                     list(collector.collect())))  # fmt: skip
