"""``State``: what a stream of events says of the workers and their tasks.

A small in-memory state for a project's own event consumers (Celery's "real-time
processing" example: ``app.events.Receiver(conn, handlers={"*": state.event})``): each
task's state, fields and worker, each worker's heartbeats and counters. It keeps Celery's
names for what it has (``state.tasks[uuid].state``, ``task.info()``, ``worker.alive``,
``alive_workers()``, ``tasks_by_time()``); Celery's graph of parents and children, the
per-type indexes and snapshots are not there.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import states

#: A worker is taken for offline once its last heartbeat is older than this many of its
#: intervals (Celery's expire window, 200%): lower notices a dead worker sooner, at the
#: cost of flagging a slow one.
HEARTBEAT_EXPIRE_FACTOR = 2.0
#: Heartbeats kept per worker (the last ones).
HEARTBEATS_KEPT = 4

#: The state each task event means.
TASK_STATES = {
    "task-sent": states.PENDING, "task-received": states.RECEIVED,
    "task-started": states.STARTED, "task-succeeded": states.SUCCESS,
    "task-failed": states.FAILURE, "task-retried": states.RETRY,
    "task-revoked": states.REVOKED, "task-rejected": states.REJECTED,
}  # fmt: skip


class Worker:
    """One worker, as its events tell."""

    def __init__(self, hostname: str):
        self.hostname = hostname
        self.pid: int | None = None
        self.freq = 60.0
        self.heartbeats: list[float] = []
        self.active: int | None = None
        self.processed: int | None = None
        self.loadavg: Any = None
        self.sw_ident = self.sw_ver = self.sw_sys = None
        self.clock = 0

    def event(self, type: str, event: dict[str, Any]) -> None:
        for key in ("pid", "freq", "active", "processed", "loadavg", "sw_ident", "sw_ver",
                    "sw_sys", "clock"):  # fmt: skip
            if key in event:
                setattr(self, key, event[key])
        if type == "worker-offline":
            self.heartbeats.clear()
        else:
            stamp = event.get("local_received") or event.get("timestamp") or time.time()
            self.heartbeats = [*self.heartbeats, stamp][-HEARTBEATS_KEPT:]

    @property
    def heartbeat_expires(self) -> float:
        """When the worker is taken for offline without a new heartbeat (Unix time)."""
        return (self.heartbeats[-1] if self.heartbeats else 0.0) + self.freq * (
            HEARTBEAT_EXPIRE_FACTOR
        )

    @property
    def alive(self) -> bool:
        return bool(self.heartbeats) and time.time() < self.heartbeat_expires

    @property
    def status_string(self) -> str:
        return "ONLINE" if self.alive else "OFFLINE"

    def __repr__(self) -> str:
        return f"<Worker: {self.hostname} ({self.status_string}) clock:{self.clock}>"


class Task:
    """One task, as its events tell (fields Celery's events carry, None until seen)."""

    _info_fields = ("args", "kwargs", "retries", "result", "eta", "runtime", "expires",
                    "exception", "exchange", "routing_key", "root_id", "parent_id")  # fmt: skip

    def __init__(self, uuid: str):
        self.uuid = uuid
        self.state = states.PENDING
        self.worker: Worker | None = None
        self.name: str | None = None
        self.args = self.kwargs = self.eta = self.expires = None
        self.result = self.exception = self.traceback = self.runtime = None
        self.exchange = self.routing_key = self.root_id = self.parent_id = None
        self.retries: int | None = None
        self.sent = self.received = self.started = self.succeeded = None
        self.failed = self.retried = self.revoked = self.rejected = None
        self.timestamp: float | None = None
        self.clock = 0

    def event(self, type: str, event: dict[str, Any], worker: Worker | None) -> None:
        new = TASK_STATES.get(type)
        stamp = event.get("timestamp")
        if new is not None and not self._outdated(new, stamp):
            self.state, self.timestamp = new, stamp
        if type.startswith("task-"):
            setattr(self, type[len("task-") :], stamp)
        for key, value in event.items():
            if key in self._info_fields or key in ("name", "traceback", "clock"):
                setattr(self, key, value)
        if worker is not None and type != "task-sent":
            self.worker = worker

    def _outdated(self, new: str, stamp: float | None) -> bool:
        """A late event of an earlier step does not undo a final state."""
        final = self.state in states.READY_STATES and new not in states.READY_STATES
        return final and stamp is not None and (self.timestamp or 0) >= stamp

    @property
    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def info(self, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The task's known fields, for display."""
        names = self._info_fields if fields is None else fields
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def as_dict(self) -> dict[str, Any]:
        fields = {k: v for k, v in vars(self).items() if k != "worker"}
        return {**fields, "worker": self.worker.hostname if self.worker else None}

    def __repr__(self) -> str:
        return f"<Task: {self.name}({self.uuid}) {self.state} clock:{self.clock}>"


class State:
    """The workers and tasks the events fed to ``event`` describe (thread-safe).

    ``callback(state, event)`` is called after each event; the oldest tasks beyond
    ``max_tasks_in_memory`` (and workers beyond ``max_workers_in_memory``) are forgotten.
    """

    def __init__(
        self, callback: Callable[[State, dict[str, Any]], Any] | None = None,
        max_workers_in_memory: int = 5000, max_tasks_in_memory: int = 10000, **_: Any,
    ):  # fmt: skip
        self.callback = callback
        self.max_workers_in_memory = max_workers_in_memory
        self.max_tasks_in_memory = max_tasks_in_memory
        self.workers: collections.OrderedDict[str, Worker] = collections.OrderedDict()
        self.tasks: collections.OrderedDict[str, Task] = collections.OrderedDict()
        self.event_count = 0
        self.task_count = 0
        self._lock = threading.RLock()

    def event(self, event: dict[str, Any]) -> None:
        """Take in one event (a receiver's handler)."""
        with self._lock:
            self.event_count += 1
            type, hostname = event.get("type", ""), event.get("hostname")
            worker = self._worker(hostname) if hostname else None
            if type.startswith("worker-") and worker is not None:
                worker.event(type, event)
            elif type.startswith("task-") and event.get("uuid"):
                self._task(event["uuid"]).event(type, event, worker)
        if self.callback is not None:
            self.callback(self, event)

    def _worker(self, hostname: str) -> Worker:
        worker = self.workers.get(hostname)
        if worker is None:
            worker = self.workers[hostname] = Worker(hostname)
            _trim(self.workers, self.max_workers_in_memory)
        return worker

    def _task(self, uuid: str) -> Task:
        task = self.tasks.get(uuid)
        if task is None:
            task = self.tasks[uuid] = Task(uuid)
            self.task_count += 1
            _trim(self.tasks, self.max_tasks_in_memory)
        return task

    def alive_workers(self) -> list[Worker]:
        return [worker for worker in list(self.workers.values()) if worker.alive]

    def itertasks(self, limit: int | None = None) -> Iterator[tuple[str, Task]]:
        for index, item in enumerate(list(self.tasks.items())):
            if limit is not None and index >= limit:
                return
            yield item

    def tasks_by_time(self, limit: int | None = None) -> list[tuple[str, Task]]:
        """``(uuid, task)`` pairs, the latest event first."""
        found = sorted(self.tasks.items(), key=lambda item: item[1].timestamp or 0, reverse=True)
        return found[:limit]

    def task_types(self) -> list[str]:
        return sorted({task.name for task in list(self.tasks.values()) if task.name})

    def clear(self, ready: bool = True) -> None:
        """Forget the tasks (only those in a final state unless ``ready`` is False)."""
        with self._lock:
            if ready:
                for uuid in [u for u, t in self.tasks.items() if t.ready]:
                    del self.tasks[uuid]
            else:
                self.tasks.clear()
                self.workers.clear()
            self.event_count = 0

    def __repr__(self) -> str:
        return f"<State: events={self.event_count} tasks={self.task_count}>"


def _trim(mapping: collections.OrderedDict, limit: int) -> None:
    while len(mapping) > limit:
        mapping.popitem(last=False)
