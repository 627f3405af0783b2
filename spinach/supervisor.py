"""Several worker processes under one supervisor: ``spinach worker --processes N``.

The supervisor starts N children, each a plain single-process ``python -m spinach worker``
with the same options (so each runs ``Engine.start_workers(number=--threads, ...)`` with
its own arbiter, notifier and subscriber threads). It then only watches them:

- a child that dies unexpectedly (a non-zero status or a signal) is started again after a
  backoff that doubles with each quick death, up to ``RESTART_MAX_DELAY``, so a child that
  crashes at import does not spin; a child that stayed up ``STABLE_AFTER`` seconds starts
  the count afresh. Each restart is logged with the exit status;
- a child that exits 0 on its own (``--stop-when-queue-empty``) is not restarted;
- SIGTERM or SIGINT is forwarded to every child, which stops gracefully (running jobs
  finish); the supervisor waits for all of them and exits 0. A second SIGINT is forwarded
  too: the children quit at once with 130, and so does the supervisor.

Why subprocesses of ``python -m spinach worker`` rather than ``multiprocessing`` (spawn):

- each child *is* the single-process worker: signal handling, graceful stop, logging and
  exit statuses are the ones ``--processes 1`` has, with nothing re-implemented beside
  them; a child's status (or the signal that killed it) reads plainly from ``Popen``;
- nothing is pickled and no ``multiprocessing`` machinery runs (resource tracker, the
  spawn start method re-importing ``__main__``, which needs ``if __name__ == "__main__"``
  guards in applications);
- the supervisor never imports the application: an application that fails at import, or
  holds connections or threads, affects only the children. Spawn would cost the same
  fresh interpreter per child anyway.

Children run in their own process group, so a Ctrl-C at a terminal reaches only the
supervisor, which forwards it once (each child would otherwise get it twice and quit at
once). On Linux a child also gets SIGTERM when the supervisor dies, even by SIGKILL
(``PR_SET_PDEATHSIG``), so no orphan keeps running. POSIX only.

The supervisor is single-threaded and its signal handlers do nothing: CPython's C-level
handler writes each signal's number to the wakeup fd (``signal.set_wakeup_fd``), and the
main loop, woken from ``select`` on it (SIGCHLD included) or at the next due restart, reads
the signals there in order and handles them, so it never polls, and a handler never runs
code that could deadlock or see half-updated state.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("spinach.supervisor")

#: Seconds before restarting a child after its first unexpected death. Lower brings a
#: crashed child back sooner; higher spares the broker and the logs a crash loop.
RESTART_BASE_DELAY = 0.5

#: Cap of the restart delay, in seconds: the delay doubles with each quick death up to it.
#: Lower retries a child that cannot start more often; higher waits longer for a fix.
RESTART_MAX_DELAY = 30.0

#: Seconds a child must stay up for its next death to count as a first one again (restart
#: after ``RESTART_BASE_DELAY``). Shorter forgives a flapping child sooner.
STABLE_AFTER = 10.0

#: Environment variable telling each child its number, from 1 to N.
INDEX_VARIABLE = "SPINACH_WORKER_INDEX"

#: Signals forwarded to the children.
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_FORWARDED_NUMBERS = frozenset(int(sig) for sig in FORWARDED_SIGNALS)
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_EXIT_INTERRUPTED = 130  # as spinach.engine.EXIT_INTERRUPTED, without importing the engine


def restart_delay(
    failures: int, base: float = RESTART_BASE_DELAY, cap: float = RESTART_MAX_DELAY
) -> float:
    """Seconds to wait before the restart following ``failures`` quick deaths in a row."""
    return min(cap, base * 2 ** max(0, failures - 1))


def describe_status(status: int) -> str:
    """A ``Popen.returncode`` in words: ``exit status 2`` or ``killed by SIGKILL``."""
    if status >= 0:
        return f"exit status {status}"
    try:
        return f"killed by {signal.Signals(-status).name}"
    except ValueError:
        return f"killed by signal {-status}"


def worker_arguments(args: argparse.Namespace) -> list[str]:
    """The ``spinach worker`` arguments of one child: the supervisor's, less ``--processes``."""
    argv = [args.app, "--log-level", args.log_level, "--threads", str(args.threads)]
    if args.namespace is not None:
        argv += ["--namespace", args.namespace]
    for queue in args.queues or ():
        argv += ["--queue", queue]
    if args.stop_when_queue_empty:
        argv.append("--stop-when-queue-empty")
    if args.asyncio:
        argv.append("--asyncio")
    argv += ["--broker-retries", str(args.broker_retries)]
    argv += ["--broker-retry-interval", repr(args.broker_retry_interval)]
    if args.no_broker_retry:
        argv.append("--no-broker-retry")
    return argv


def run_supervisor(args: argparse.Namespace) -> int:
    """``spinach worker --processes N`` (N > 1): supervise N workers; the exit status."""
    command = [sys.executable, "-m", "spinach", "worker", *worker_arguments(args)]
    return Supervisor(command, args.processes).run()


@dataclass
class Child:
    """One slot of the supervisor: its current process, if any, and its restart state."""

    index: int
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0  #: quick deaths in a row
    restart_at: float | None = None  #: monotonic time of a pending restart
    done: bool = False  #: ended for good (stopped, or exited 0 on its own)
    status: int | None = None  #: last exit status, once done


class Supervisor:
    """Run ``command`` in ``processes`` children until they end or a signal stops them."""

    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        *,
        base_delay: float = RESTART_BASE_DELAY,
        max_delay: float = RESTART_MAX_DELAY,
        stable_after: float = STABLE_AFTER,
    ):
        self.command = list(command)
        self.children = [Child(index) for index in range(1, processes + 1)]
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.stable_after = stable_after
        self.stopping = False

    # -- main loop -----------------------------------------------------------------------

    def run(self) -> int:
        """Start the children and supervise them; the exit status. Main thread only."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        previous = self._install_handlers(wake_write)
        try:
            count = len(self.children)
            logger.info("Supervisor %d starting %d worker processes", os.getpid(), count)
            for child in self.children:
                self._start(child)
            while not self._finished():
                self._handle_signals(self._wait(wake_read, self._timeout()))
                self._reap()
                self._restart_due()
            status = self._exit_status()
            logger.info("All worker processes ended; supervisor exiting with status %d", status)
            return status
        finally:
            self._kill_leftovers()
            self._restore_handlers(previous)
            os.close(wake_read)
            os.close(wake_write)

    def _install_handlers(self, wake_fd: int) -> dict[int, Any]:
        """Note forwarded signals and SIGCHLD; each also wakes the loop through ``wake_fd``."""
        previous: dict[int, Any] = {
            sig: signal.getsignal(sig) for sig in (*FORWARDED_SIGNALS, signal.SIGCHLD)
        }
        previous[-1] = signal.set_wakeup_fd(wake_fd)
        for sig in (*FORWARDED_SIGNALS, signal.SIGCHLD):
            signal.signal(sig, _noted_in_the_wakeup_fd)
        return previous

    @staticmethod
    def _restore_handlers(previous: dict[int, Any]) -> None:
        signal.set_wakeup_fd(previous.pop(-1))
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    @staticmethod
    def _wait(wake_fd: int, timeout: float | None) -> list[int]:
        """Sleep until a signal (SIGCHLD included) or ``timeout``; the forwarded signals
        received since the last call, in order, read from the wakeup pipe."""
        select.select([wake_fd], [], [], timeout)
        received = []
        try:
            while chunk := os.read(wake_fd, 512):
                received += [signum for signum in chunk if signum in _FORWARDED_NUMBERS]
        except BlockingIOError:
            pass
        return received

    def _timeout(self) -> float | None:
        """Seconds until the next pending restart; None (no timeout) without one."""
        due = [c.restart_at for c in self.children if c.restart_at is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _finished(self) -> bool:
        return all(child.done for child in self.children)

    # -- children ------------------------------------------------------------------------

    def _start(self, child: Child) -> None:
        env = {**os.environ, INDEX_VARIABLE: str(child.index)}
        parent, prctl = os.getpid(), _prctl()
        child.process = subprocess.Popen(
            self.command, env=env, stdin=subprocess.DEVNULL,
            preexec_fn=lambda: _prepare_child(parent, prctl),  # safe: no other thread here
        )  # fmt: skip
        child.started_at = time.monotonic()
        child.restart_at = None
        logger.info(
            "Started worker process %d of %d (pid %d)",
            child.index, len(self.children), child.process.pid,
        )  # fmt: skip

    def _reap(self) -> None:
        """Handle every child that exited since the last look (non-blocking)."""
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                self._on_exit(child, child.process)

    def _on_exit(self, child: Child, process: subprocess.Popen) -> None:
        status = process.returncode
        uptime = time.monotonic() - child.started_at
        child.process = None
        where = f"Worker process {child.index} (pid {process.pid})"
        if self.stopping or status == 0:
            why = "" if self.stopping else " on its own: not restarted"
            logger.info("%s ended with %s%s", where, describe_status(status), why)
            child.done, child.status = True, status
            return
        child.failures = 1 if uptime >= self.stable_after else child.failures + 1
        delay = restart_delay(child.failures, self.base_delay, self.max_delay)
        child.restart_at = time.monotonic() + delay
        logger.warning(
            "%s died unexpectedly with %s after %.1fs; restarting it in %.1fs (restart %d)",
            where, describe_status(status), uptime, delay, child.failures,
        )  # fmt: skip

    def _restart_due(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None and child.restart_at <= now and not self.stopping:
                self._start(child)

    # -- stopping ------------------------------------------------------------------------

    def _handle_signals(self, received: list[int]) -> None:
        """Forward the signals received since the last look to the running children."""
        for signum in received:
            running = [c for c in self.children if c.process is not None]
            name = signal.Signals(signum).name
            again = " again" if self.stopping else ""
            logger.info(
                "Received %s%s: forwarding it to %d worker process(es) and waiting for them",
                name, again, len(running),
            )  # fmt: skip
            self.stopping = True
            for child in self.children:
                if child.process is None and not child.done:  # waiting to restart: cancel
                    child.restart_at, child.done = None, True
            for child in running:
                if child.process is not None:  # running: it has one
                    child.process.send_signal(signum)  # a no-op once it exited

    def _exit_status(self) -> int:
        """0 after a graceful stop (or when every child exited 0 on its own), else 1 or 130."""
        statuses = [c.status for c in self.children if c.status is not None]
        if _EXIT_INTERRUPTED in statuses:
            return _EXIT_INTERRUPTED
        stopped_by_signal = {-int(sig) for sig in FORWARDED_SIGNALS} if self.stopping else set()
        return 0 if all(s == 0 or s in stopped_by_signal for s in statuses) else 1

    def _kill_leftovers(self) -> None:
        """After an error in the supervisor itself, leave no child running behind it."""
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                logger.error("Killing worker process %d (pid %d)", child.index, child.process.pid)
                child.process.kill()
                child.process.wait()


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """Linux's ``prctl``, looked up once in the supervisor (never between fork and exec)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _prepare_child(parent: int, prctl: Callable[..., int] | None) -> None:
    """In the child before exec: own process group, and SIGTERM when the parent dies."""
    os.setpgid(0, 0)
    if prctl is None:
        return
    prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl: nobody would tell us
        os.kill(os.getpid(), signal.SIGTERM)


def _noted_in_the_wakeup_fd(signum: int, frame: Any) -> None:
    """The Python-level handler: nothing, the C-level one wrote ``signum`` to the wakeup fd."""
