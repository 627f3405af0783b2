"""``revoke(terminate=True)``: stopping a task while it runs in a worker thread.

Celery's prefork pool sends a signal to the child process running the task. Here tasks run
in threads of the worker process, which cannot be signalled: a terminate request stops the
job by raising an exception in its thread (the injection of ``app.timelimits``, which the
hard time limit uses too). The signal name (``SIGTERM``, ``SIGKILL``, ``SIGINT``, ...) is
accepted and reported in ``task_revoked(signum=...)``, but every signal means the same:
stop this job.

A request is kept next to the revoked ids, in the broker's shared state: the value
``compat/terminate/<task id>`` (with a Redis broker the key
``{<namespace>}/compat/terminate/<task id>``), expiring with the revocation. Each worker
process polls the requests of the tasks it is running, every
``Terminations.refresh_interval`` seconds while it runs any, so a request made in
another process reaches a running task within that interval; one made in the worker's own
process applies at once. The task's result becomes REVOKED with ``TaskRevokedError(
'terminated')`` and ``task_revoked`` is sent with ``terminated=True``, as Celery; the job
then ends as done (it is neither retried nor failed).

Under ``-P gevent`` the exception is thrown into the task's greenlet, which stops at once
even when blocked in I/O (what Celery's gevent pool does by killing the greenlet).

Limits of threads: the exception is delivered between two Python bytecodes, so a task
blocked in a C call (``time.sleep``, a socket read, a C extension) stops only once that
call returns; a task catching ``BaseException`` may go on, but its outcome is not stored.
"""

from __future__ import annotations

import logging
import signal as _signal
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from spinach.forks import reset_after_fork

if TYPE_CHECKING:
    from .base import Celery

logger = logging.getLogger("spinach_compat.control")

#: Celery's default signal of ``terminate``.
TERM_SIGNAME = "SIGTERM"


class Stoppable(Protocol):
    """A running task that can be stopped (see ``timelimits._Guard``)."""

    task_id: str

    def terminate(self, signum: int) -> bool: ...


def signum_of(signal: Any) -> int:
    """The number of a signal given as Celery takes it: 15, 'TERM', 'SIGTERM' (None: TERM)."""
    if signal is None:
        signal = TERM_SIGNAME
    if isinstance(signal, int):
        return signal
    name = str(signal).upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return int(getattr(_signal.Signals, name))
    except AttributeError:
        raise ValueError(f"revoke(terminate=True, signal={signal!r}): no such signal") from None


class Terminations:
    """Terminate requests, and the tasks running in this process that they stop."""

    #: Seconds between two reads of the terminate requests while tasks run here. Lower
    #: stops a task sooner after a request from another process; each read is one round
    #: trip to Redis (for all the tasks running in this process), made only while some run.
    refresh_interval = 0.1

    def __init__(self, app: Celery, expires: float):
        self.app = app
        self.expires = expires
        self._lock = threading.Lock()
        self._runs: dict[str, Stoppable] = {}
        self._poller: threading.Thread | None = None
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: a fresh lock (a parent's thread may have held it), and no
        runs nor poller (the parent's, whose threads the child does not have)."""
        self._lock = threading.Lock()
        self._runs = {}
        self._poller = None

    @staticmethod
    def name(task_id: str) -> str:
        """The broker's shared-state entry of a request to stop ``task_id``."""
        return f"compat/terminate/{task_id}"

    def request(self, task_ids: list[str], signum: int) -> list[str]:
        """Ask every worker to stop these tasks; those stopped in this process at once."""
        requests = {self.name(task_id): str(signum) for task_id in task_ids}
        self.app.engine.broker.set_values(requests, ttl=max(1, int(self.expires)))
        return self._stop({task_id: signum for task_id in task_ids})

    def running(self) -> list[str]:
        """The ids of the facade tasks running in this process."""
        with self._lock:
            return list(self._runs)

    def add(self, run: Stoppable) -> None:
        """Track a task starting to run here (polling requests while any runs)."""
        with self._lock:
            self._runs[run.task_id] = run
            if self._poller is None:
                self._poller = threading.Thread(
                    target=self._poll, name="revoke-terminate", daemon=True
                )
                self._poller.start()

    def discard(self, run: Stoppable) -> None:
        """Stop tracking a task that ended."""
        with self._lock:
            if self._runs.get(run.task_id) is run:
                del self._runs[run.task_id]

    def _poll(self) -> None:
        """Read the requests of the tasks running here until none runs."""
        while True:
            time.sleep(self.refresh_interval)
            with self._lock:
                ids = list(self._runs)
                if not ids:
                    self._poller = None
                    return
            try:
                self._stop(self._requested(ids))
            except Exception:  # e.g. Redis unreachable: try again at the next round
                logger.exception("Reading the terminate requests failed")

    def _requested(self, task_ids: list[str]) -> dict[str, int]:
        """``{task id: signum}`` of the requests naming some of ``task_ids``."""
        values = self.app.engine.broker.get_values([self.name(task_id) for task_id in task_ids])
        return {i: int(v) for i, v in zip(task_ids, values, strict=True) if v is not None}

    def _stop(self, requested: dict[str, int]) -> list[str]:
        """Stop the runs named in ``requested``; the ids of those stopped now."""
        with self._lock:
            runs = [(self._runs[i], signum) for i, signum in requested.items() if i in self._runs]
        return [run.task_id for run, signum in runs if run.terminate(signum)]
