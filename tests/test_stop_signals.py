"""``spinach.stop_signals`` in this process: what its handler notes, and what wakes it."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from spinach import stop_signals

from .helpers import WAIT_TIMEOUT

NEVER = 3600.0  #: a timeout no passing test reaches

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals: main thread"
)


@pytest.fixture
def catcher():
    """The process's catcher, installed for the test only."""
    before = {sig: signal.getsignal(sig) for sig in stop_signals.STOP_SIGNALS}
    with stop_signals.caught() as caught:
        yield caught
    assert {sig: signal.getsignal(sig) for sig in stop_signals.STOP_SIGNALS} == before


def wait_for_signals(catcher, count: int) -> list[signal.Signals]:
    received: list[signal.Signals] = []
    for _ in range(count):
        received += catcher.wait(WAIT_TIMEOUT)
        if len(received) >= count:
            break
    return received


def test_signals_are_read_in_order_without_raising(catcher):
    os.kill(os.getpid(), signal.SIGTERM)  # neither kills this process
    os.kill(os.getpid(), signal.SIGINT)  # nor raises KeyboardInterrupt

    assert wait_for_signals(catcher, 2) == [signal.SIGTERM, signal.SIGINT]
    assert catcher.wait(0) == []


def test_a_signal_taken_by_another_thread_wakes_the_waiting_thread(catcher):
    release = threading.Event()
    thread = threading.Thread(target=release.wait, args=(WAIT_TIMEOUT,), name="signalled")
    thread.start()
    try:
        signal.pthread_kill(thread.ident, signal.SIGTERM)
        assert wait_for_signals(catcher, 1) == [signal.SIGTERM]
    finally:
        release.set()
        thread.join()


def test_wake_ends_a_wait_without_a_signal(catcher):
    thread = threading.Thread(target=catcher.wake, name="waker")
    thread.start()
    thread.join()

    assert catcher.wait(NEVER) == []  # it returned: woken (else pytest-timeout fails the test)


def test_a_nested_block_reuses_the_catcher_and_its_pending_signals(catcher):
    os.kill(os.getpid(), signal.SIGTERM)
    with stop_signals.caught() as inner:
        assert inner is catcher
        assert wait_for_signals(inner, 1) == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # still the outer's


def test_outside_the_main_thread_nothing_is_caught():
    result = []

    def enter() -> None:
        with stop_signals.caught() as caught:
            result.append(caught)

    thread = threading.Thread(target=enter, name="not-main")
    thread.start()
    thread.join()
    assert result == [None]


def test_wake_after_uninstall_is_a_no_op():
    with stop_signals.caught() as caught:
        pass
    caught.wake()


def test_a_forked_child_gets_the_previous_handlers_and_not_the_pipe(catcher):
    """A child's SIGTERM (``multiprocessing.Pool.terminate``) ends the child, as by default,
    and does not reach the parent's catcher."""
    ready_read, ready_write = os.pipe()
    hold_read, hold_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: says it runs, then blocks until the signal ends it
        try:
            os.write(ready_write, b"1")
            os.read(hold_read, 1)
        finally:
            os._exit(0)
    watchdog = threading.Timer(WAIT_TIMEOUT, os.kill, (pid, signal.SIGKILL))  # a stuck child
    watchdog.start()
    try:
        assert os.read(ready_read, 1) == b"1"
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
    finally:
        watchdog.cancel()
        watchdog.join()
        for fd in (ready_read, ready_write, hold_read, hold_write):
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGTERM
    assert catcher.wait(0) == []
