"""A worker's events: task events from the process running the tasks, and the node's
``worker-online``, ``worker-heartbeat`` (every ``HEARTBEAT_INTERVAL`` seconds) and
``worker-offline``.

``WorkerEvents`` is a worker service (see ``spinach_compat.worker``): started once the
engine runs, stopped at a warm shutdown. The task events come from the facade's task
signals, sent in the job's thread; each only stamps and buffers an event there (see
``dispatcher``). In a prefork pool each child sends its tasks' events (under the node's
name and its own pid, as Celery's pool children), and the parent sends the worker events,
counting the children's jobs through their status pipes.
"""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kombu.utils.encoding import safe_repr

from spinach import __version__ as spinach_version

from .. import signals
from .._state import app_of
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


def events_enabled(app: Celery, flag: bool | None) -> bool:
    """Whether a worker sends task events: ``-E``, else ``worker_send_task_events``."""
    return bool(flag) or bool(app.conf.get("worker_send_task_events"))


class TaskCounter:
    """Tasks running and finished in this process (the heartbeat's active and processed)."""

    def __init__(self) -> None:
        self.active = 0
        self.processed = 0
        self._lock = threading.Lock()

    def started(self) -> None:
        with self._lock:
            self.active += 1

    def finished(self) -> None:
        with self._lock:
            self.active -= 1
            self.processed += 1


class WorkerEvents:
    """The events of one worker process (a service; see the module docstring).

    ``tasks``: send task events (a prefork parent sends none); ``heartbeats``: send the
    worker events (a prefork child sends none). ``counts`` gives ``(active, processed)``
    for the heartbeats; by default the tasks of this process.
    """

    def __init__(
        self, app: Celery, hostname: str, *, tasks: bool = True, heartbeats: bool = True,
        interval: float = HEARTBEAT_INTERVAL,
        counts: Callable[[], tuple[int, int]] | None = None,
    ):  # fmt: skip
        self.app = app
        self.hostname = hostname
        self.tasks = tasks
        self.heartbeats = heartbeats
        self.interval = interval
        self.counter = TaskCounter()
        self.counts = counts or (lambda: (self.counter.active, self.counter.processed))
        self.dispatcher: EventDispatcher | None = None
        self._stop = threading.Event()
        self._heart: threading.Thread | None = None
        self._receivers: list[tuple[Any, Callable[..., None]]] = []

    def prepare(self) -> None:
        """Nothing to prepare: the broker is reached when the first event is published."""

    def start(self) -> None:
        """Start sending: connect the task signals, send ``worker-online``, beat."""
        self.dispatcher = EventDispatcher(app=self.app, hostname=self.hostname, buffered=True)
        signals.worker_process_shutdown.connect(self.shutdown, weak=False)
        self._receivers.append((signals.worker_process_shutdown, self.shutdown))
        if self.tasks:
            self._connect()
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
        for signal, receiver in (
            (signals.task_received, self._received), (signals.task_prerun, self._started),
            (signals.task_success, self._succeeded), (signals.task_failure, self._failed),
            (signals.task_retry, self._retried), (signals.task_revoked, self._revoked),
            (signals.task_postrun, self._finished),
        ):  # fmt: skip
            signal.connect(receiver, weak=False)
            self._receivers.append((signal, receiver))

    def _send_task(self, task: Any, type: str, task_id: str | None, **fields: Any) -> None:
        """Send a task event for ``task`` of this app, run by the worker (not eagerly)."""
        dispatcher = self.dispatcher
        if dispatcher is None or task is None or app_of(task) is not self.app:
            return
        if not getattr(task, "send_events", True) or task.request.is_eager:
            return
        dispatcher.send(type, uuid=task_id, **fields)

    def _received(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        task = self.app.tasks.get(request.task) if request is not None else None
        if task is None:
            return
        self._send_task(
            task, "task-received", request.id, name=request.task, args=request.argsrepr,
            kwargs=request.kwargsrepr, root_id=request.root_id, parent_id=request.parent_id,
            retries=request.retries, eta=request.eta, expires=request.expires,
        )  # fmt: skip

    def _started(self, sender: Any = None, task_id: str | None = None, **_: Any) -> None:
        if sender is not None and not sender.request.is_eager:
            self.counter.started()
        self._send_task(sender, "task-started", task_id)

    def _finished(self, sender: Any = None, retval: Any = None, state: str = "", **_: Any) -> None:
        if sender is None or sender.request.is_eager:
            return
        self.counter.finished()
        if state == "REJECTED":
            requeue = bool(getattr(retval, "requeue", False))
            self._send_task(sender, "task-rejected", sender.request.id, requeue=requeue)

    def _succeeded(self, sender: Any = None, result: Any = None, runtime: float = 0.0,
                   **_: Any) -> None:  # fmt: skip
        if sender is not None:
            text = safe_repr(result)
            if len(text) > RESULT_REPR_MAXSIZE:
                text = text[:RESULT_REPR_MAXSIZE] + "..."
            self._send_task(sender, "task-succeeded", sender.request.id, result=text,
                            runtime=runtime)  # fmt: skip

    def _failed(self, sender: Any = None, task_id: str | None = None, exception: Any = None,
                einfo: Any = None, **_: Any) -> None:  # fmt: skip
        traceback = getattr(einfo, "traceback", None)
        self._send_task(sender, "task-failed", task_id, exception=safe_repr(exception),
                        traceback=traceback)  # fmt: skip

    def _retried(self, sender: Any = None, request: Any = None, reason: Any = None,
                 einfo: Any = None, **_: Any) -> None:  # fmt: skip
        exc = getattr(reason, "exc", None)
        self._send_task(
            sender,
            "task-retried",
            getattr(request, "id", None),
            exception=safe_repr(exc),
            traceback=getattr(einfo, "traceback", ""),
        )

    def _revoked(self, sender: Any = None, request: Any = None, terminated: bool = False,
                 signum: Any = None, expired: bool = False, **_: Any) -> None:  # fmt: skip
        self._send_task(
            sender,
            "task-revoked",
            getattr(request, "id", None),
            terminated=terminated,
            signum=signum,
            expired=expired,
        )


def _load_average() -> tuple[float, ...]:
    """The load averages of the machine, rounded as Celery's (none where unknown)."""
    try:
        return tuple(round(value, 2) for value in os.getloadavg())
    except OSError:
        return ()
