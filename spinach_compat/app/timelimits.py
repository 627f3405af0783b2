"""Stopping a task run by a thread worker: soft and hard time limits, as Celery's, and
``revoke(terminate=True)`` (see ``app.terminate``).

Celery's prefork pool signals (soft) or kills (hard) the child process running a task. A
thread cannot be signalled or killed, so here both limits are an exception injected into
the worker thread with ``PyThreadState_SetAsyncExc``, armed by a timer thread per run:

- **soft limit** (``soft_time_limit``, ``task_soft_time_limit``, ``apply_async(
  soft_time_limit=)``): ``SoftTimeLimitExceeded`` is raised inside the task, which may
  catch it to clean up, exactly as in Celery.
- **hard limit** (``time_limit``, ...): an internal ``BaseException`` is raised inside the
  task, so ``except SoftTimeLimitExceeded`` and ``except Exception`` do not catch it; the
  run then fails with ``TimeLimitExceeded(<limit>)``. The FAILURE is stored when the
  limit strikes, even if the task has not stopped yet, and a task that swallows the
  exception (``except BaseException``) and returns still fails with ``TimeLimitExceeded``.

Caveats of threads, to know when migrating:

- An async exception is delivered between two Python bytecodes. A task blocked in C code
  (``time.sleep``, a socket read without timeout, a long C extension call) sees it only
  once that call returns.
- A thread cannot be killed: until the task returns, its worker slot stays busy. When the
  task has not ended ``HARD_LIMIT_GRACE`` seconds after its hard limit, an error is
  logged naming it. Give blocking calls their own timeouts.
- Limits apply to runs in a worker only; eager runs (``apply``, ``task_always_eager``)
  ignore them, as Celery's.

Under ``-P gevent`` the task runs in a greenlet, and the same exceptions are thrown into
it from gevent's hub (``spinach.workers.gevent.GreenletTarget``), as ``gevent.Timeout``
does: a task blocked in I/O or ``time.sleep`` (patched) is interrupted at once; only a
CPU-bound loop that never yields sees them late (it blocks every greenlet meanwhile).

A terminate request injects ``TaskTerminated`` the same way, with the same caveats; the
REVOKED result is stored when the request strikes, and the run then ends as ``Ignore``
(its outcome is not stored over REVOKED, the job is neither retried nor failed).
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .. import signals
from .._state import app_of
from ..exceptions import Ignore, SoftTimeLimitExceeded, TimeLimitExceeded

if TYPE_CHECKING:
    from .context import Context
    from .task import Task

logger = logging.getLogger("spinach_compat.timelimits")

#: Seconds a task gets to end once its hard limit struck before an error is logged.
HARD_LIMIT_GRACE = 1.0


class HardTimeLimit(BaseException):
    """Injected at the hard limit: not an ``Exception``, so tasks rarely catch it."""


class TaskTerminated(BaseException):
    """Injected by ``revoke(terminate=True)``: not an ``Exception`` either."""


#: What a guard may inject into the thread it watches.
INJECTED = (HardTimeLimit, SoftTimeLimitExceeded, TaskTerminated)


def limits_of(task: Task, request: Context) -> tuple[float | None, float | None]:
    """``(hard, soft)`` seconds: the call's, else the task's, else the app's settings."""
    hard, soft = (request.timelimit or (None, None)) if not request.is_eager else (None, None)
    conf = app_of(task).conf
    hard = _first(hard, task.time_limit, conf.task_time_limit)
    soft = _first(soft, task.soft_time_limit, conf.task_soft_time_limit)
    return hard, soft


def _first(*values: Any) -> float | None:
    value = next((v for v in values if v is not None), None)
    return value or None


def call_with_limits(task: Task, request: Context, function: Callable[[], Any]) -> Any:
    """``function()`` under the time limits of ``task``/``request``, and stoppable by
    ``revoke(terminate=True)`` (none of it when eager).

    When this returns or raises, the timers are disarmed and no exception of this run is
    pending in the thread: a late one must never strike the next job the thread runs. A
    terminated run raises ``Ignore``: its REVOKED result is stored already.
    """
    if request.is_eager:
        return function()
    hard, soft = limits_of(task, request)
    guard = _Guard(task, request, hard, soft)
    body = _Body()
    try:
        _run_then_disarm(guard, function, body)
    except INJECTED:  # landed in a disarm: the body's outcome stands (a hard one set
        if not body.ended:  # ``hard_struck``, a terminate ``terminated``); never expected
            raise
    if guard.terminated is not None:  # even if the task swallowed TaskTerminated
        raise Ignore("terminated") from None
    if guard.hard_struck:  # the task may have swallowed HardTimeLimit and returned
        raise TimeLimitExceeded(hard) from None
    return body.outcome()


class _Body:
    """How ``function`` of one run ended: returned ``value`` or raised ``error``."""

    def __init__(self) -> None:
        self.ended = False
        self.value: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _run_then_disarm(guard: _Guard, function: Callable[[], Any], body: _Body) -> None:
    """Arm ``guard``, run ``function`` keeping its outcome in ``body``, disarm ``guard``.

    An async exception can land at any bytecode, also in a ``finally`` before its
    ``disarm`` completed. Each of the two timers and a terminate inject at most once, so
    at most three land: of four nested (idempotent) disarms, the last cannot be
    interrupted. Keeping the body's outcome aside means a late landing never masks the
    body's own result or error.
    """
    try:
        try:
            try:
                try:
                    guard.arm()
                    body.value = function()
                    body.ended = True
                except BaseException as exc:  # re-raised by ``body.outcome()``
                    body.error, body.ended = exc, True
                finally:
                    guard.disarm()
            finally:
                guard.disarm()
        finally:
            guard.disarm()
    finally:
        guard.disarm()


class _Guard:
    """The timers and terminate requests of one run, injecting into the thread that armed
    them."""

    def __init__(self, task: Task, request: Context, hard: float | None, soft: float | None):
        self.task, self.request, self.hard = task, request, hard
        self.task_id = request.id or ""  # a running request has one
        self._target = target_of_current()  # the thread (or greenlet) running the task
        self._lock = threading.Lock()
        self._running = True
        self._done = threading.Event()
        self.hard_struck = False
        self.terminated: int | None = None  # the signal number of a terminate request
        self._runs = app_of(task).control.terminations
        self._timers = []
        for kind, delay, strike in (("soft", soft, self._soft), ("hard", hard, self._hard)):
            if delay is not None:
                timer = threading.Timer(delay, strike)
                timer.name, timer.daemon = f"time-limit-{kind}-{request.id}", True
                self._timers.append(timer)

    def arm(self) -> None:
        """Start the timers; they strike only once all started (they wait for the lock).

        On CPython 3.11 a thread being started carries the id of its starter until it runs,
        so an exception injected meanwhile could hit the new timer thread instead.
        """
        with self._lock:
            for timer in self._timers:
                timer.start()
            self._runs.add(self)  # terminate requests wait for the lock too

    def disarm(self) -> None:
        """Stop the timers and drop an exception injected but not delivered yet.

        Idempotent: called again when an async exception interrupted a previous call.
        """
        with self._lock:
            self._running = False
            for timer in self._timers:
                timer.cancel()
            self._runs.discard(self)
            self._target.inject(None)
        self._done.set()

    def terminate(self, signum: int) -> bool:
        """Stop the run for a terminate request (once); whether it was still running.

        As Celery's worker, REVOKED is stored and ``task_revoked`` sent when the request
        strikes, not when the task has stopped.
        """
        with self._lock:
            if not self._running or self.terminated is not None:
                return False
            self.terminated = signum
            logger.info("Terminating %s[%s] (signal %s)", self.task.name, self.task_id, signum)
            self._target.inject(TaskTerminated)
        self._announce_terminated(signum)
        return True

    def _announce_terminated(self, signum: int) -> None:
        from .trace import should_store

        task, request = self.task, self.request
        if should_store(task, request, eager=False) or task.store_errors_even_if_ignored:
            task.backend.mark_as_revoked(self.task_id, "terminated", request=request)
        if request.chord:  # as Celery: a terminated header task fails its chord's body
            from . import chords

            chords.on_part_return(task, request)
        signals.task_revoked.send(
            sender=task, request=request, terminated=True, signum=signum, expired=False
        )

    def _soft(self) -> None:
        with self._lock:
            if self._running:
                task, task_id = self.task.name, self.request.id
                logger.warning("Soft time limit exceeded for %s[%s]", task, task_id)
                self._target.inject(SoftTimeLimitExceeded)

    def _hard(self) -> None:
        with self._lock:
            if not self._running:
                return
            self.hard_struck = True
            logger.error(
                "Hard time limit (%ss) exceeded for %s[%s]", self.hard, self.task.name,
                self.request.id,
            )  # fmt: skip
            self._target.inject(HardTimeLimit)
        self._store_failure()
        if not self._done.wait(HARD_LIMIT_GRACE):
            logger.error(
                "Task %s[%s] is still running %ss after its hard time limit: a thread cannot "
                "be killed, so its worker slot stays busy until the task returns (it is "
                "blocked in C code or swallowed the exception)", self.task.name,
                self.request.id, HARD_LIMIT_GRACE,
            )  # fmt: skip

    def _store_failure(self) -> None:
        """Store the FAILURE now, as Celery's pool does when it kills the process."""
        from .trace import should_store

        if should_store(self.task, self.request, eager=False):
            exc = TimeLimitExceeded(self.hard)
            self.task.backend.mark_as_failure(self.task_id, exc, request=self.request)


class Target(Protocol):
    """Where a guard raises its exceptions: the thread or greenlet running the task."""

    def inject(self, exc_type: type[BaseException] | None) -> None:
        """Raise ``exc_type`` there soon; None cancels one not delivered yet."""


class ThreadTarget:
    """A thread, reached with ``PyThreadState_SetAsyncExc`` (see the module docstring)."""

    def __init__(self) -> None:
        self.thread_id = threading.get_ident()

    def inject(self, exc_type: type[BaseException] | None) -> None:
        """Raise ``exc_type`` in the thread at its next bytecode (None: cancel)."""
        exc = ctypes.py_object(exc_type) if exc_type is not None else None
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), exc)


def target_of_current() -> Target:
    """The current thread; under gevent's monkey patching (``-P gevent``), where "threads"
    are greenlets of one thread, the current greenlet (``spinach.workers.gevent``)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        from spinach.workers.gevent import GreenletTarget

        return GreenletTarget()
    return ThreadTarget()
