"""SIGTERM and SIGINT caught without a lock, and handled by the main thread.

Python runs a signal handler in the main thread between two bytecodes, wherever that
thread is: possibly inside ``Event.set`` or ``Event.wait`` holding the lock of their
condition, or inside another signal's handler. A handler that takes a lock (setting an
event, logging) can then deadlock, or act on state half updated. And a signal the kernel
delivers to another thread does not interrupt the main thread's untimed wait on a lock,
so a main thread waiting on an ``Event`` may never see it.

So the Python-level handler here does nothing at all: CPython's C-level handler writes
each signal's number to the wakeup fd (``signal.set_wakeup_fd``), whichever thread the
kernel delivered it to, and the main thread, sleeping in ``select`` on that fd, wakes and
reads the signals in the order they came. Other threads wake it the same way
(``StopSignals.wake``) when the state it waits for changed.

One catcher is active per process at a time: ``caught()`` inside another ``caught()``
(the ``spinach worker`` command around ``Engine.start_workers``) reuses the outer one, so
a signal received while the application loads is handled once the workers run.

A child forked meanwhile (``multiprocessing`` in a task) does not keep it: the wakeup fd
would write the child's signals to the parent's pipe (a ``Pool.terminate()`` stopping the
worker) while the child itself ignored them. The child gets the previous handlers back.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Iterator
from typing import Any

from .forks import at_fork_in_child

#: The signals asking a worker process to stop.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

#: Seconds ``StopSignals.wait`` sleeps at most by default. Signals and wake-ups end the
#: sleep at once, so this only bounds the delay after a lost wake-up; lower wakes an idle
#: process more often.
CHECK_INTERVAL = 1.0

_WAKE = b"\0"  # written by ``wake``: no signal has the number 0


class StopSignals:
    """Catches SIGTERM and SIGINT from ``install`` to ``uninstall`` (main thread only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # never taken by a signal handler: see the module
        self._read_fd = self._write_fd = -1
        self._previous: dict[int, Any] = {}
        self._previous_wakeup_fd = -1

    def install(self) -> None:
        """Catch the stop signals; other signals keep their handlers."""
        self._read_fd, self._write_fd = os.pipe()
        for fd in (self._read_fd, self._write_fd):
            os.set_blocking(fd, False)
        self._previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._write_fd)
        for sig in STOP_SIGNALS:
            signal.signal(sig, _note_only)

    def uninstall(self) -> None:
        """Give the stop signals back their previous handlers; signals not read are lost.
        Once only: a second call does nothing."""
        with self._lock:
            if self._read_fd < 0:
                return
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            os.close(self._read_fd)
            os.close(self._write_fd)
            self._read_fd = self._write_fd = -1

    def wake(self) -> None:
        """Wake the main thread from ``wait`` (from any thread; a no-op once uninstalled)."""
        with self._lock:
            if self._write_fd < 0:
                return
            # a full pipe: the main thread has plenty to read already
            with contextlib.suppress(BlockingIOError):
                os.write(self._write_fd, _WAKE)

    def wait(self, timeout: float = CHECK_INTERVAL) -> list[signal.Signals]:
        """Sleep until a stop signal, a ``wake`` or ``timeout``; the stop signals received
        since the last call, in order."""
        select.select([self._read_fd], [], [], timeout)
        received: list[signal.Signals] = []
        try:
            while chunk := os.read(self._read_fd, 512):
                received.extend(signal.Signals(n) for n in chunk if n in _STOP_NUMBERS)
        except BlockingIOError:
            pass
        return received


_STOP_NUMBERS = frozenset(int(sig) for sig in STOP_SIGNALS)
_active: StopSignals | None = None


def _note_only(signum: int, frame: Any) -> None:
    """The Python-level handler: nothing, the C-level one wrote ``signum`` to the pipe."""


@at_fork_in_child
def _uninstall_in_child() -> None:
    """In a forked child: the previous handlers, and the child's copy of the pipe closed
    (see the module docstring)."""
    global _active
    catcher, _active = _active, None
    if catcher is not None:
        catcher._lock = threading.Lock()  # a parent's thread may have held it (``wake``)
        catcher.uninstall()


@contextlib.contextmanager
def caught() -> Iterator[StopSignals | None]:
    """The process's catcher of stop signals while in this block, installing one if none is;
    None outside the main thread, where signals cannot be caught."""
    global _active
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    if _active is not None:
        yield _active
        return
    catcher = StopSignals()
    catcher.install()
    _active = catcher
    try:
        yield catcher
    finally:
        _active = None
        catcher.uninstall()
