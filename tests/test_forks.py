"""Locks a forked child inherits held: a thread of the parent held them at the fork, and
that thread does not exist in the child, so the child gets fresh ones (``spinach.forks``).

Each test holds a lock in a thread, forks, and has the child take the lock; the child's
exit status says whether it could (a child stuck on the lock is killed after a timeout).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from spinach.brokers.redis import RedisBroker
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
    """Fork; whether ``check()`` is true in the child, in time."""
    pid = os.fork()
    if pid == 0:  # the child: no pytest from here on, only the exit status
        try:
            os._exit(0 if check() else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + PARENT_WAIT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return False


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
