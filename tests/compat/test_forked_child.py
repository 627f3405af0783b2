"""The facade's app and signals in a forked child, while a thread of the parent held their
locks at the fork: the child gets fresh ones (``spinach.forks``), and ``on_after_fork``
receivers run once every lock of the process is fresh."""

from __future__ import annotations

import os

import pytest

from spinach_compat.signals import Signal
from tests.test_forks import child_can_take, held, in_child

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def test_the_app_s_locks_are_free_in_a_forked_child(make_app) -> None:
    app = make_app()
    with held(lambda: app._lock):
        assert in_child(lambda: app.Task is not None and app.loader is not None)
    with held(lambda: app.lifecycle_state.finalize_lock):
        assert in_child(lambda: app.finalize() is None and app.lifecycle_state.finalize_done)


def test_on_after_fork_receivers_find_every_lock_fresh(make_app) -> None:
    """A receiver using the app's broker, made after the app: its lock is fresh too."""
    app = make_app()
    broker = app.engine.broker
    read_end, write_end = os.pipe()

    @app.on_after_fork.connect
    def reset(sender, **kwargs):
        os.write(write_end, b"%d" % len(sender.engine.broker.queue_lengths()))

    with held(lambda: broker._store.lock):
        assert in_child(lambda: True)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read() == b"0"


def test_a_signal_s_lock_is_free_in_a_forked_child() -> None:
    signal = Signal("forked")
    received: list[str] = []

    def connect_and_send() -> bool:
        signal.connect(lambda sender, **kwargs: received.append(sender), weak=False)
        signal.send(sender="child")
        return received == ["child"]

    with held(lambda: signal._lock):
        assert child_can_take(lambda: signal._lock)
        assert in_child(connect_and_send)


class _Run:
    """A task running in the parent, as ``Terminations`` tracks it."""

    task_id = "parent-task"

    def terminate(self, signum: int) -> bool:
        return True


def test_terminations_start_empty_in_a_forked_child(make_app) -> None:
    """The parent's runs are not the child's (their threads are not there), nor its lock."""
    terminations = make_app().control.terminations
    terminations.add(run := _Run())
    try:
        with held(lambda: terminations._lock):
            assert in_child(lambda: terminations.running() == [])
    finally:
        terminations.discard(run)


def test_a_forked_child_makes_its_own_rate_limiters(make_app) -> None:
    app = make_app()
    limits = app.rate_limits
    assert in_child(lambda: app.rate_limits is not limits)
