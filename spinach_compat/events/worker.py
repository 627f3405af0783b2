"""A worker's events: task events from the process running the tasks (with ``-E``, or
once ``set_task_events(True)``), and the node's ``worker-online``, ``worker-heartbeat``
(every ``HEARTBEAT_INTERVAL`` seconds) and ``worker-offline``, sent by every worker unless
``--without-heartbeat``, as Celery's.

``WorkerEvents`` is a worker service (see ``spinach_compat.worker``): started once the
engine runs, stopped at ``worker_process_shutdown``, once the running tasks finished. The
task events come from the job's thread, where the trace calls the service directly (a
``trace.watchers`` entry: ``started`` gives received and started, ``finished`` succeeded,
failed, retried or rejected), and from ``task_revoked``; a job only records raw values
there, made into events by the publisher thread (see ``records`` and ``dispatcher``). In a
prefork pool each child sends its tasks' events (under the node's name and its own pid, as
Celery's pool children), and the parent sends the worker events, counting the children's
jobs through their status pipes.
"""

from __future__ import annotations

import itertools
import os
import platform
import threading
import traceback as traceback_module
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kombu.utils.encoding import safe_repr

from spinach import __version__ as spinach_version

from .. import signals, states
from .._state import app_of
from ..app import trace
from ..utils.saferepr import saferepr
from . import records
from .dispatcher import EventDispatcher

if TYPE_CHECKING:
    from ..app.base import Celery

#: Seconds between heartbeats (Celery's default): receivers take a worker for offline after
#: missing a few, so longer means less traffic but a dead worker noticed later.
HEARTBEAT_INTERVAL = 2.0
#: Characters of a task's result repr in ``task-succeeded`` (Celery's resultrepr_maxsize).
RESULT_REPR_MAXSIZE = 1024

#: The software fields of worker events (Flower shows them).
SOFTWARE_INFO: dict[str, Any] = {
    "sw_ident": "spinach-compat",
    "sw_ver": spinach_version,
    "sw_sys": platform.system(),
}


#: The worker events of this process that run (``set_task_events`` acts on them).
_running: weakref.WeakSet[WorkerEvents] = weakref.WeakSet()


def set_task_events(enabled: bool) -> int:
    """Turn the task events of this process's worker on or off (what the ``enable_events``
    and ``disable_events`` remote control commands do, as Celery's); how many workers'
    events were switched (0: none runs here)."""
    running = list(_running)
    for events in running:
        events.set_task_events(enabled)
    return len(running)


def heartbeat_now() -> int:
    """Send a ``worker-heartbeat`` at once (the ``heartbeat`` remote control command); how
    many workers of this process sent one (a prefork child sends none: its parent does)."""
    beating = [events for events in list(_running) if events.heartbeats]
    for events in beating:
        events._send_worker("worker-heartbeat")
    return len(beating)


def events_enabled(app: Celery, flag: bool | None) -> bool:
    """Whether a worker sends task events: ``-E``, else ``worker_send_task_events``."""
    return bool(flag) or bool(app.conf.get("worker_send_task_events"))


class TaskCounter:
    """Tasks running and finished in this process (the heartbeat's active and processed).

    Counted without a lock: ``next`` on an ``itertools.count`` is one step under the GIL, so
    the job threads never wait for each other here; the heartbeat reads the counts from the
    counters' reprs (``count(8)``: 8 is the next value) every few seconds."""

    def __init__(self) -> None:
        self._started = itertools.count()
        self._finished = itertools.count()

    def started(self) -> None:
        next(self._started)

    def finished(self) -> None:
        next(self._finished)

    @property
    def processed(self) -> int:
        return _next_value(self._finished)

    @property
    def active(self) -> int:
        finished = _next_value(self._finished)  # first: a job may finish in between
        return max(_next_value(self._started) - finished, 0)


def _next_value(counter: itertools.count[int]) -> int:
    """The value ``next(counter)`` would give (how many it gave, from 0)."""
    return int(repr(counter)[len("count(") : -1])


class WorkerEvents:
    """The events of one worker process (a service; see the module docstring).

    ``tasks``: send task events from the start (``-E``; ``set_task_events`` switches them
    later); ``runs_tasks``: this process runs tasks (not a prefork parent); ``heartbeats``:
    send the worker events (a prefork child sends none). ``counts`` gives ``(active,
    processed)`` for the heartbeats; by default the tasks of this process.
    """

    def __init__(
        self, app: Celery, hostname: str, *, tasks: bool = True, heartbeats: bool = True,
        runs_tasks: bool = True, interval: float = HEARTBEAT_INTERVAL,
        counts: Callable[[], tuple[int, int]] | None = None,
    ):  # fmt: skip
        self.app = app
        self.hostname = hostname
        self.tasks = tasks
        self.runs_tasks = runs_tasks
        self.heartbeats = heartbeats
        self.interval = interval
        self.counter = TaskCounter()
        self.counts = counts or (lambda: (self.counter.active, self.counter.processed))
        self.dispatcher: EventDispatcher | None = None
        self._stop = threading.Event()
        self._heart: threading.Thread | None = None
        self._receivers: list[tuple[Any, Callable[..., None]]] = []
        self._own_tasks: dict[Any, bool] = {}  # task: this app's, with send_events

    def prepare(self) -> None:
        """Nothing to prepare: the broker is reached when the first event is published."""

    def start(self) -> None:
        """Start sending: connect the task signals, send ``worker-online``, beat."""
        self.dispatcher = EventDispatcher(app=self.app, hostname=self.hostname, buffered=True)
        signals.worker_process_shutdown.connect(self.shutdown, weak=False)
        self._receivers.append((signals.worker_process_shutdown, self.shutdown))
        self.dispatcher.set_task_events(self.tasks)
        if self.runs_tasks:
            self._connect()
        _running.add(self)
        if self.heartbeats:
            self._send_worker("worker-online")
            self._heart = threading.Thread(target=self._beat, name="spinach-heartbeat",
                                           daemon=True)  # fmt: skip
            self._heart.start()

    def stop(self) -> None:
        """The worker stops: its services stop before its running tasks finish, whose
        events are still to be sent, so a started service stops at
        ``worker_process_shutdown``, sent once they did."""
        if self.dispatcher is None:
            self.shutdown()

    def shutdown(self, **_: Any) -> None:
        """Stop sending: ``worker-offline``, then the buffer is published; idempotent."""
        _running.discard(self)
        if self in trace.watchers:  # replaced, never changed: the job threads iterate it
            trace.watchers = [watcher for watcher in trace.watchers if watcher is not self]
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)
        self._receivers.clear()
        self._stop.set()
        heart, self._heart = self._heart, None
        if heart is not None:
            heart.join()
            self._send_worker("worker-offline")
        dispatcher, self.dispatcher = self.dispatcher, None
        if dispatcher is not None:
            dispatcher.close()

    def set_task_events(self, enabled: bool) -> None:
        """Turn this worker's task events on or off (``enable_events``/``disable_events``)."""
        self.tasks = enabled
        if self.dispatcher is not None:
            self.dispatcher.set_task_events(enabled)

    # -- worker events ---------------------------------------------------------------------

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self._send_worker("worker-heartbeat")

    def _send_worker(self, type: str) -> None:
        dispatcher = self.dispatcher
        if dispatcher is None:
            return
        active, processed = self.counts()
        dispatcher.send(type, freq=self.interval, active=active, processed=processed,
                        loadavg=_load_average(), **SOFTWARE_INFO)  # fmt: skip

    # -- task events -----------------------------------------------------------------------

    def _connect(self) -> None:
        """Watch every attempt of the worker's tasks (``trace.watchers``, called in the job's
        thread), and revocations (a signal)."""
        trace.watchers = [*trace.watchers, self]  # replaced: the job threads iterate it
        signals.task_revoked.connect(self._revoked, weak=False)
        self._receivers.append((signals.task_revoked, self._revoked))

    def _sends_for(self, task: Any) -> EventDispatcher | None:
        """The dispatcher if ``task``'s events are to be sent (this app's, ``send_events``:
        known per task after its first job)."""
        dispatcher = self.dispatcher
        if dispatcher is None or not dispatcher.task_events:
            return None
        own = self._own_tasks.get(task)
        if own is None:
            own = self._own_tasks[task] = bool(task.send_events) and app_of(task) is self.app
        return dispatcher if own else None

    def started(self, task: Any, request: Any) -> EventDispatcher | None:
        """A job starts: ``task-received`` (the worker takes the job as it runs it, so both
        come together), then ``task-started``; recorded raw (see ``records``). Returns the
        dispatcher that sent them (the trace's token for ``finished``), or None."""
        self.counter.started()
        dispatcher = self._sends_for(task)
        if dispatcher is not None:
            dispatcher.record(
                records.received, request.id, task.name, request.argsrepr, request.kwargsrepr,
                request.root_id, request.parent_id, request.retries, request.eta,
                request.expires,
            )  # fmt: skip
        return dispatcher

    def finished(
        self, dispatcher: EventDispatcher | None, task: Any, request: Any, state: str,
        retval: Any, runtime: float | None = None,
    ) -> None:  # fmt: skip
        """A job ends: the outcome's event (succeeded, failed, retried, rejected), if its
        start's were sent (``dispatcher``: what ``started`` returned)."""
        self.counter.finished()
        if dispatcher is None:
            return
        if state == states.SUCCESS:
            seconds = runtime if runtime is not None else 0.0
            dispatcher.record(records.succeeded, request.id, _result_repr(retval), seconds)
        elif state in (states.FAILURE, states.RETRY):
            exc = getattr(retval, "exc", None) if state == states.RETRY else retval
            kind = "task-failed" if state == states.FAILURE else "task-retried"
            dispatcher.send(kind, uuid=request.id, exception=safe_repr(exc),
                            traceback=_traceback(retval))  # fmt: skip
        elif state == states.REJECTED:
            requeue = bool(getattr(retval, "requeue", False))
            dispatcher.send("task-rejected", uuid=request.id, requeue=requeue)

    def _revoked(self, sender: Any = None, request: Any = None, terminated: bool = False,
                 signum: Any = None, expired: bool = False, **_: Any) -> None:  # fmt: skip
        dispatcher = self._sends_for(sender) if sender is not None else None
        if dispatcher is not None:
            dispatcher.send("task-revoked", uuid=getattr(request, "id", None),
                            terminated=terminated, signum=signum, expired=expired)  # fmt: skip


def _result_repr(value: Any) -> str:
    """The text of ``value``, cut to ``RESULT_REPR_MAXSIZE`` characters as Celery's
    ``saferepr`` cuts it."""
    return saferepr(value, RESULT_REPR_MAXSIZE)


def _traceback(exc: Any) -> str:
    """The traceback of an exception, as Celery's events carry it."""
    if not isinstance(exc, BaseException):
        return ""
    return "".join(traceback_module.format_exception(type(exc), exc, exc.__traceback__))


def _load_average() -> tuple[float, ...]:
    """The load averages of the machine, rounded as Celery's (none where unknown)."""
    try:
        return tuple(round(value, 2) for value in os.getloadavg())
    except OSError:
        return ()
