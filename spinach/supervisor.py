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

Used by other commands (the Celery facade's prefork pool), the supervisor also offers:

- ``recycle_status``: a child exiting with it asks to be replaced (it reached a limit of its
  own, e.g. jobs or memory); it is started again at once, without a backoff;
- ``status_pipes``: each child gets the write end of a pipe (its number in the environment
  variable ``STATUS_FD_VARIABLE``) where it writes one byte per change: ``R`` ready, ``B``
  busy, ``I`` idle (see ``report_status``). The supervisor reads them in its loop, so it
  knows which children run a job, and calls ``on_ready`` once every first child is ready;
- ``scaler``: called after each wake-up with the supervisor, it may ``grow`` or ``shrink`` the
  children and returns the seconds until it wants to look again (None: at the next wake-up);
- ``on_stop``: called with the signal's name when the first stop signal arrives;
- ``on_exit``: called with a child's pid once it exited (``--metrics-port`` drops its live
  gauges); ``environment``: variables added to the children's.

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
import collections
import contextlib
import ctypes
import functools
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
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

#: Environment variable telling each child where to write its metrics for the supervisor
#: to serve (``--metrics-port``; see ``spinach.contrib.prometheus``).
METRICS_DIR_VARIABLE = "SPINACH_METRICS_DIR"

#: Environment variable holding the file descriptor a child writes its status to.
STATUS_FD_VARIABLE = "SPINACH_STATUS_FD"

#: The bytes a child writes to its status pipe.
READY, BUSY, IDLE = b"R", b"B", b"I"

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
    port = getattr(args, "metrics_port", None)
    if port is None:
        return Supervisor(command, args.processes).run()
    try:
        from .contrib.prometheus import MultiprocessMetrics  # the extra is needed only here

        metrics = MultiprocessMetrics(port).start()
    except (ImportError, OSError) as exc:
        logger.error("Cannot serve metrics (--metrics-port %d): %s", port, exc)
        return 1
    try:
        supervisor = Supervisor(
            command, args.processes, environment=metrics.environment,
            on_exit=metrics.process_exited,
        )  # fmt: skip
        return supervisor.run()
    finally:
        metrics.close()


def report_status(status: bytes) -> None:
    """In a child: tell the supervisor ``READY``, ``BUSY`` or ``IDLE`` (no-op without a pipe)."""
    fd = os.environ.get(STATUS_FD_VARIABLE)
    if fd:
        with contextlib.suppress(OSError):  # the supervisor is gone: its death signal is next
            os.write(int(fd), status)


@dataclass
class Child:
    """One slot of the supervisor: its current process, if any, and its restart state."""

    index: int
    process: subprocess.Popen | None = None
    status_fd: int | None = None  #: read end of its status pipe, while it runs
    ready: bool = False  #: reported READY (status pipes only)
    busy: bool = False  #: running a job (status pipes only)
    finished: int = 0  #: jobs its processes reported finished (status pipes only)
    retiring: bool = False  #: stopped by ``shrink``: not restarted, then removed
    started_at: float = 0.0
    failures: int = 0  #: quick deaths in a row
    restart_at: float | None = None  #: monotonic time of a pending restart
    done: bool = False  #: ended for good (stopped, or exited 0 on its own)
    status: int | None = None  #: last exit status, once done


Scaler = Callable[["Supervisor"], "float | None"]


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
        recycle_status: int | None = None,
        status_pipes: bool = False,
        scaler: Scaler | None = None,
        on_ready: Callable[[], None] | None = None,
        on_stop: Callable[[str], None] | None = None,
        cwd: str | None = None,
        environment: Mapping[str, str] | None = None,
        on_exit: Callable[[int], None] | None = None,
    ):
        self.command = list(command)
        self.children = [Child(index) for index in range(1, processes + 1)]
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.stable_after = stable_after
        self.recycle_status = recycle_status
        self.status_pipes = status_pipes
        self.scaler = scaler
        self.on_ready = on_ready
        self.on_stop = on_stop
        self.cwd = cwd
        self.environment = dict(environment or {})
        self.on_exit = on_exit
        self.stopping = False
        self._announced_ready = False
        self._scale_at: float | None = None
        self._calls: collections.deque[Callable[[], Any]] = collections.deque()
        self._wake_fd: int | None = None

    # -- main loop -----------------------------------------------------------------------

    def run(self) -> int:
        """Start the children and supervise them; the exit status. Main thread only."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        previous = self._install_handlers(wake_write)
        self._wake_fd = wake_write
        try:
            count = len(self.children)
            logger.info("Supervisor %d starting %d worker processes", os.getpid(), count)
            for child in self.children:
                self._start(child)
            self._announce_ready()
            while not self._finished():
                self._handle_signals(self._wait(wake_read, self._timeout()))
                self._reap()
                self._run_calls()
                self._restart_due()
                self._scale()
            status = self._exit_status()
            logger.info("All worker processes ended; supervisor exiting with status %d", status)
            return status
        finally:
            self._wake_fd = None
            self._kill_leftovers()
            self._restore_handlers(previous)
            os.close(wake_read)
            os.close(wake_write)

    def call_soon(self, action: Callable[[], Any]) -> None:
        """Run ``action`` in the supervisor's loop (thread-safe: e.g. from a remote-control
        thread); it wakes the loop."""
        self._calls.append(action)
        fd = self._wake_fd
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, b"\0")  # not a forwarded signal's number: only wakes

    def _run_calls(self) -> None:
        while self._calls:
            action = self._calls.popleft()
            try:
                action()
            except Exception:
                logger.exception("Supervisor call %r failed", action)

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

    def _wait(self, wake_fd: int, timeout: float | None) -> list[int]:
        """Sleep until a signal (SIGCHLD included), a child's status or ``timeout``; the
        forwarded signals received since the last call, in order, read from the wakeup pipe."""
        pipes = {c.status_fd: c for c in self.children if c.status_fd is not None}
        readable, _, _ = select.select([wake_fd, *pipes], [], [], timeout)
        for fd in readable:
            if fd in pipes:
                self._read_status(pipes[fd])
        received = []
        try:
            while chunk := os.read(wake_fd, 512):
                received += [signum for signum in chunk if signum in _FORWARDED_NUMBERS]
        except BlockingIOError:
            pass
        return received

    def _read_status(self, child: Child) -> None:
        """Take in what ``child`` wrote to its status pipe; close it at its end."""
        assert child.status_fd is not None
        data = os.read(child.status_fd, 512)
        if not data:
            os.close(child.status_fd)
            child.status_fd = None
            return
        child.ready = child.ready or READY in data
        child.finished += data.count(IDLE)
        last = max(data.rfind(BUSY), data.rfind(IDLE))
        if last >= 0:
            child.busy = data[last : last + 1] == BUSY
        self._announce_ready()

    def _announce_ready(self) -> None:
        """Call ``on_ready`` once, when every child (with status pipes) first reported READY."""
        if self._announced_ready or self.on_ready is None or not self.status_pipes:
            return
        if all(c.ready for c in self.children if not c.done):
            self._announced_ready = True
            self.on_ready()

    def _timeout(self) -> float | None:
        """Seconds until the next pending restart or look of the scaler; None without one."""
        due = [c.restart_at for c in self.children if c.restart_at is not None]
        if self._scale_at is not None:
            due.append(self._scale_at)
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _finished(self) -> bool:
        """Every child ended for good (with a scaler, only once stopping: it may grow again)."""
        ended = all(child.done for child in self.children)
        return ended and (self.stopping or self.scaler is None)

    # -- children ------------------------------------------------------------------------

    def _start(self, child: Child) -> None:
        env = {**os.environ, **self.environment, INDEX_VARIABLE: str(child.index)}
        parent, prctl = os.getpid(), _prctl()
        write_fd = self._open_status_pipe(child, env)
        try:
            child.process = subprocess.Popen(
                self.command, env=env, stdin=subprocess.DEVNULL, cwd=self.cwd,
                pass_fds=() if write_fd is None else (write_fd,),
                preexec_fn=lambda: _prepare_child(parent, prctl),  # safe: no other thread here
            )  # fmt: skip
        finally:
            if write_fd is not None:
                os.close(write_fd)
        child.started_at = time.monotonic()
        child.restart_at = None
        logger.info(
            "Started worker process %d of %d (pid %d)",
            child.index, len(self.children), child.process.pid,
        )  # fmt: skip

    def _open_status_pipe(self, child: Child, env: dict[str, str]) -> int | None:
        """With ``status_pipes``: a fresh pipe for ``child``; the write end, for the child."""
        if not self.status_pipes:
            return None
        if child.status_fd is not None:  # left by its previous process
            os.close(child.status_fd)
        child.status_fd, write_fd = os.pipe()
        child.ready = child.busy = False
        env[STATUS_FD_VARIABLE] = str(write_fd)
        return write_fd

    def _reap(self) -> None:
        """Handle every child that exited since the last look (non-blocking)."""
        for child in list(self.children):
            if child.process is not None and child.process.poll() is not None:
                self._on_exit(child, child.process)

    def _on_exit(self, child: Child, process: subprocess.Popen) -> None:
        status = process.returncode
        uptime = time.monotonic() - child.started_at
        if self.on_exit is not None:
            self.on_exit(process.pid)
        child.process = None
        child.busy = False
        where = f"Worker process {child.index} (pid {process.pid})"
        if child.retiring and not self.stopping:
            logger.info("%s retired with %s", where, describe_status(status))
            self._forget(child)
            return
        if self.stopping or status == 0:
            why = "" if self.stopping else " on its own: not restarted"
            logger.info("%s ended with %s%s", where, describe_status(status), why)
            child.done, child.status = True, status
            return
        if status == self.recycle_status:
            logger.info("%s reached its limit and exited: replacing it", where)
            child.failures, child.restart_at = 0, time.monotonic()
            return
        child.failures = 1 if uptime >= self.stable_after else child.failures + 1
        delay = restart_delay(child.failures, self.base_delay, self.max_delay)
        child.restart_at = time.monotonic() + delay
        logger.warning(
            "%s died unexpectedly with %s after %.1fs; restarting it in %.1fs (restart %d)",
            where, describe_status(status), uptime, delay, child.failures,
        )  # fmt: skip

    def _forget(self, child: Child) -> None:
        """Remove a retired child's slot (its index becomes free for a later one)."""
        if child.status_fd is not None:
            os.close(child.status_fd)
            child.status_fd = None
        self.children.remove(child)

    def _restart_due(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None and child.restart_at <= now and not self.stopping:
                self._start(child)

    # -- scaling -------------------------------------------------------------------------

    def _scale(self) -> None:
        """Let the scaler look, when it asked to or at a wake-up; never while stopping."""
        if self.scaler is None or self.stopping:
            return
        if self._scale_at is not None and time.monotonic() < self._scale_at:
            return
        delay = self.scaler(self)
        self._scale_at = None if delay is None else time.monotonic() + delay

    def active(self) -> list[Child]:
        """The children that are neither retiring nor ended."""
        return [c for c in self.children if not c.retiring and not c.done]

    def grow(self, count: int) -> None:
        """Start ``count`` more children, each with the smallest free index."""
        for _ in range(count):
            taken = {c.index for c in self.children}
            index = next(i for i in range(1, len(taken) + 2) if i not in taken)
            child = Child(index)
            self.children.append(child)
            self.children.sort(key=lambda c: c.index)
            self._start(child)

    def shrink(self, count: int) -> int:
        """Stop up to ``count`` idle children gracefully (highest index first); how many."""
        idle = [c for c in self.active() if c.process is not None and not c.busy]
        retired = 0
        for child in sorted(idle, key=lambda c: -c.index)[:count]:
            child.retiring = True
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
            retired += 1
        return retired

    def retire(self, children: Sequence[Child]) -> None:
        """Stop these children gracefully (each finishes its job), not restarting them."""
        for child in children:
            if child.process is not None and not child.done:
                child.retiring = True
                child.process.send_signal(signal.SIGTERM)

    # -- stopping ------------------------------------------------------------------------

    def stop(self, name: str = "SIGTERM") -> None:
        """Stop as the signal ``name`` received would (in the supervisor's loop)."""
        self._handle_signals([int(signal.Signals[name])])

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
            if not self.stopping and self.on_stop is not None:
                self.on_stop(name)
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
            if child.status_fd is not None:
                os.close(child.status_fd)
                child.status_fd = None


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
