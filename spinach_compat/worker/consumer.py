"""What a worker node's remote-control commands act on: ``state.consumer``.

A ``NodeConsumer`` offers, for the handlers of ``spinach_compat.worker.control``:
``active_requests()``, ``scheduled_requests()`` (read from the broker's bookkeeping of the
node's processes), ``queues()``, ``stats()``, ``clock``, ``totals`` (tasks started per
name), and the changes ``grow``/``shrink``/``autoscale`` (the pool), ``add_queue``/
``cancel_queue``, ``set_rate_limit``/``set_time_limits`` and ``shutdown``.

``ThreadsConsumer`` is a threads or solo worker: the node is the process running the
tasks, changed at once. ``PreforkConsumer`` is a prefork pool's supervisor (the parent): it
has the children; a change they must learn (queues, limits) is passed to new children in
``OVERRIDES_VARIABLE`` and the old ones are replaced gracefully (each finishes its job).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kombu.clocks import LamportClock

from .. import signals
from ..app.control import node_of, scheduled_info, task_info
from ..app.priority import band_queues, base_queue, priority_steps
from .control import nok, ok

if TYPE_CHECKING:
    from spinach.brokers.base import WorkerInfo
    from spinach.supervisor import Supervisor
    from spinach.workers import Workers

    from ..app.base import Celery

logger = logging.getLogger("spinach_compat.worker.consumer")

#: Celery's pool classes, as ``stats()['pool']['implementation']`` names them.
POOL_CLASSES = {
    "prefork": "celery.concurrency.prefork:TaskPool",
    "threads": "celery.concurrency.thread:TaskPool",
    "solo": "celery.concurrency.solo:TaskPool",
    "gevent": "celery.concurrency.gevent:TaskPool",
}

#: Environment variable of a prefork pool's children: JSON of the remote-control changes
#: (``queues``, ``rate_limits``, ``time_limits``) they apply at start.
OVERRIDES_VARIABLE = "SPINACH_COMPAT_POOL_OVERRIDES"

#: Seconds a prefork child's task counts are kept in the broker after its last task.
#: Longer keeps ``stats()['total']`` of an idle node; each count is one small key per task.
TOTALS_TTL = 7 * 24 * 3600.0


class TaskTotals:
    """Tasks started per name by one node, counted when they start (as Celery's
    ``total``): in memory for a threads worker, in the broker for prefork children (their
    parent answers), under ``compat/total/<node>/<parent pid>/<task>``."""

    def __init__(self, app: Celery, hostname: str, shared_by: int | None = None):
        self.app = app
        self.hostname = hostname
        self.shared_by = shared_by  #: the parent's pid when the counts are in the broker
        self.local: Counter[str] = Counter()
        self._lock = threading.Lock()

    def key(self, name: str) -> str:
        return f"compat/total/{self.hostname}/{self.shared_by}/{name}"

    def connect(self) -> None:
        signals.task_prerun.connect(self._started, weak=False)

    def disconnect(self) -> None:
        signals.task_prerun.disconnect(self._started)

    def _started(self, sender: Any = None, task: Any = None, **kwargs: Any) -> None:
        if getattr(task, "app", None) is not self.app:
            return
        if getattr(getattr(task, "request", None), "is_eager", False):
            return
        name = task.name
        if self.shared_by is None:
            with self._lock:
                self.local[name] += 1
        else:
            self.app.engine.broker.increment(self.key(name), TOTALS_TTL)

    def read(self) -> dict[str, int]:
        """``{task name: count}`` of the tasks started at least once."""
        if self.shared_by is None:
            with self._lock:
                return dict(self.local)
        names = sorted(self.app.tasks)
        values = self.app.engine.broker.get_values([self.key(n) for n in names])
        return {name: int(value) for name, value in zip(names, values, strict=True) if value}


class NodeConsumer:
    """A node as its remote-control commands see it (see the module docstring)."""

    pool = "threads"

    def __init__(self, app: Celery, hostname: str, queues: list[str], totals: TaskTotals):
        self.app = app
        self.hostname = hostname
        self._queues = list(dict.fromkeys(base_queue(q) for q in queues))
        self.totals = totals
        self.clock = LamportClock()
        self.started_at = time.monotonic()

    # -- reading ---------------------------------------------------------------------------

    def infos(self) -> list[WorkerInfo]:
        """The live native worker processes of this node."""
        raise NotImplementedError

    def queues(self) -> list[str]:
        return list(self._queues)

    def active_requests(self, safe: bool = False) -> list[dict[str, Any]]:
        """The jobs started by this node's threads (held ones are fetched, hence running
        for the broker, but not started)."""
        running, held = self.app.engine.broker.running_jobs(), self._held_ids()
        return [task_info(job, info, safe) for info in self.infos()
                for job in running.get(info.id, []) if job.id not in held]  # fmt: skip

    def reserved_requests(self, safe: bool = False) -> list[dict[str, Any]]:
        """The jobs this process's pool holds for a free thread (``spinach.workers.prefetch``),
        as Celery's reserved requests: not acknowledged, no worker process yet."""
        infos, pool = self.infos(), self._pool()
        if not infos or pool is None:
            return []
        return [{**task_info(job, infos[0], safe), "acknowledged": False, "worker_pid": None}
                for job in pool.held_jobs()]  # fmt: skip

    def _pool(self) -> Workers | None:
        worker = self.app.engine.worker
        return None if worker is None else worker.pool

    def _held_ids(self) -> set[str]:
        pool = self._pool()
        return set() if pool is None else {job.id for job in pool.held_jobs()}

    def scheduled_requests(self) -> list[dict[str, Any]]:
        infos = self.infos()
        if not infos:
            return []
        mine = set(self._queues)
        return [scheduled_info(job, infos[0]) for job in self.app.engine.broker.scheduled_jobs()
                if base_queue(job.queue) in mine]  # fmt: skip

    def stats(self) -> dict[str, Any]:
        """Celery's ``stats`` keys."""
        conn = self.app.connection_for_write()
        broker = dict(conn.info())
        broker.pop("password", None)
        return {
            "total": self.totals.read(),
            "pid": os.getpid(),
            "clock": str(self.clock.value),
            "uptime": int(time.monotonic() - self.started_at),
            "pool": self.pool_stats(),
            "broker": broker,
            "prefetch_count": self.prefetch_count(),
            "rusage": _rusage(),
        }

    def pool_stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def prefetch_count(self) -> int:
        """The most jobs the node reserves, running ones included: as Celery's,
        ``worker_prefetch_multiplier`` times the pool's size (``worker.prefetch``)."""
        multiplier = self.app.conf.get("worker_prefetch_multiplier", 4)
        return int(multiplier) * int(self.pool_stats()["max-concurrency"])

    def _timeouts(self) -> list[Any]:
        conf = self.app.conf
        return [conf.get("task_soft_time_limit") or 0, conf.get("task_time_limit") or 0]

    # -- changing ------------------------------------------------------------------------

    def grow(self, n: int) -> dict[str, Any]:
        return nok(f"pool_grow is not supported by the {self.pool} pool: start the worker with "
                   "another -c, or use -P prefork")  # fmt: skip

    def shrink(self, n: int) -> dict[str, Any]:
        return nok(f"pool_shrink is not supported by the {self.pool} pool: start the worker "
                   "with another -c, or use -P prefork")  # fmt: skip

    def autoscale(self, maximum: Any, minimum: Any) -> dict[str, Any]:
        return nok(f"autoscale is not supported by the {self.pool} pool: use -P prefork "
                   "with --autoscale")  # fmt: skip

    def add_queue(self, queue: str) -> None:
        if queue not in self._queues:
            self._queues.append(queue)
            self.consume(self._queues)

    def cancel_queue(self, queue: str) -> None:
        if queue in self._queues:
            self._queues.remove(queue)
            self.consume(self._queues)

    def consume(self, queues: list[str]) -> None:
        raise NotImplementedError

    def set_rate_limit(self, task_name: str, rate_limit: Any) -> None:
        self.app.tasks[task_name].rate_limit = rate_limit or None

    def set_time_limits(self, task_name: str, soft: Any, hard: Any) -> None:
        task = self.app.tasks[task_name]
        task.soft_time_limit, task.time_limit = soft, hard

    def shutdown(self, msg: str) -> None:
        raise NotImplementedError


class ThreadsConsumer(NodeConsumer):
    """A threads (or solo) worker: the engine of this process."""

    def __init__(self, app: Celery, hostname: str, queues: list[str], totals: TaskTotals,
                 pool: str, on_shutdown: Callable[[], None]):  # fmt: skip
        super().__init__(app, hostname, queues, totals)
        self.pool = pool
        self.on_shutdown = on_shutdown

    def infos(self) -> list[WorkerInfo]:
        broker = self.app.engine.broker
        oldest = broker.now() - broker.dead_worker_threshold
        return [w for w in broker.workers()
                if w.id == broker.worker_id and w.last_heartbeat >= oldest]  # fmt: skip

    def pool_stats(self) -> dict[str, Any]:
        """As Celery's thread (``-P threads``), gevent or solo pool shows itself."""
        threads = sum(info.threads for info in self.infos())
        if self.pool == "gevent":  # Celery's base pool info: its class and its limit
            return {"implementation": POOL_CLASSES["gevent"], "max-concurrency": threads}
        if self.pool == "solo":
            return {"implementation": POOL_CLASSES["solo"], "max-concurrency": 1,
                    "processes": [os.getpid()], "max-tasks-per-child": None,
                    "put-guarded-by-semaphore": True, "timeouts": []}  # fmt: skip
        return {"implementation": POOL_CLASSES["threads"], "max-concurrency": threads,
                "threads": threads}  # fmt: skip

    def consume(self, queues: list[str]) -> None:
        self.app.engine.consume(band_queues(queues, priority_steps(self.app.conf)))

    def shutdown(self, msg: str) -> None:
        logger.warning("%s", msg)
        self.on_shutdown()


class PreforkConsumer(NodeConsumer):
    """A prefork pool's supervisor: its children run the tasks."""

    pool = "prefork"

    def __init__(self, app: Celery, hostname: str, queues: list[str], totals: TaskTotals,
                 autoscaler: Any = None):  # fmt: skip
        super().__init__(app, hostname, queues, totals)
        self.autoscaler = autoscaler
        self.supervisor: Supervisor | None = None  #: set once it runs
        self.overrides: dict[str, Any] = {}

    def _children(self) -> list[int]:
        supervisor = self.supervisor
        if supervisor is None:
            return []
        return sorted(c.process.pid for c in list(supervisor.active()) if c.process is not None)

    def infos(self) -> list[WorkerInfo]:
        broker = self.app.engine.broker
        oldest = broker.now() - broker.dead_worker_threshold
        pids = set(self._children())
        return [w for w in broker.workers() if node_of(w.id) == self.hostname
                and w.pid in pids and w.last_heartbeat >= oldest]  # fmt: skip

    def pool_stats(self) -> dict[str, Any]:
        """As Celery's prefork pool shows itself."""
        processes = self._children()
        limit = self.app.conf.get("worker_max_tasks_per_child") or "N/A"
        return {"implementation": POOL_CLASSES["prefork"], "max-concurrency": len(processes),
                "processes": processes, "max-tasks-per-child": limit,
                "put-guarded-by-semaphore": False, "timeouts": self._timeouts(),
                "writes": "N/A"}  # fmt: skip

    def prefetch_count(self) -> int:
        """One job per child: a prefork child holds none ahead (``worker.prefetch``), where
        Celery's parent reserves ``worker_prefetch_multiplier`` per child."""
        return int(self.pool_stats()["max-concurrency"])

    def _call(self, action: Callable[[Supervisor], Any]) -> bool:
        supervisor = self.supervisor
        if supervisor is None:
            return False
        supervisor.call_soon(lambda: action(supervisor))
        return True

    def grow(self, n: int) -> dict[str, Any]:
        if self.autoscaler is not None:
            return nok("pool_grow is not supported with autoscale. Adjust autoscale range "
                       "instead.")  # fmt: skip
        self._call(lambda s: s.grow(n))
        return ok("pool will grow")

    def shrink(self, n: int) -> dict[str, Any]:
        if self.autoscaler is not None:
            return nok("pool_shrink is not supported with autoscale. Adjust autoscale range "
                       "instead.")  # fmt: skip
        self._call(lambda s: s.shrink(n))
        return ok("pool will shrink")

    def autoscale(self, maximum: Any, minimum: Any) -> dict[str, Any]:
        scaler = self.autoscaler
        if scaler is None:
            raise ValueError("Autoscale not enabled")
        from .autoscale import Bounds

        bounds = scaler.bounds
        high = bounds.maximum if maximum is None else int(maximum)
        low = bounds.minimum if minimum is None else int(minimum)
        scaler.bounds = Bounds(max(high, 1), min(max(low, 0), max(high, 1)))
        return ok(f"autoscale now max={scaler.bounds.maximum} min={scaler.bounds.minimum}")

    def consume(self, queues: list[str]) -> None:
        self._override("queues", list(queues))

    def set_rate_limit(self, task_name: str, rate_limit: Any) -> None:
        super().set_rate_limit(task_name, rate_limit)
        self._override("rate_limits", {**self.overrides.get("rate_limits", {}),
                                       task_name: rate_limit or None})  # fmt: skip

    def set_time_limits(self, task_name: str, soft: Any, hard: Any) -> None:
        super().set_time_limits(task_name, soft, hard)
        self._override("time_limits", {**self.overrides.get("time_limits", {}),
                                       task_name: [soft, hard]})  # fmt: skip

    def _override(self, what: str, value: Any) -> None:
        """New children apply ``overrides``; the running ones are replaced gracefully."""
        self.overrides[what] = value
        text = json.dumps(self.overrides)
        self._call(lambda s: replace_children(s, {OVERRIDES_VARIABLE: text}))

    def shutdown(self, msg: str) -> None:
        logger.warning("%s", msg)
        self._call(lambda s: s.stop("SIGTERM"))


def replace_children(supervisor: Supervisor, environment: dict[str, str]) -> None:
    """Start as many children as run, with ``environment``; retire the old ones (each
    finishes its job first)."""
    supervisor.environment.update(environment)
    old = list(supervisor.active())
    supervisor.grow(len(old))
    supervisor.retire(old)


def apply_overrides(app: Celery, queues: list[str] | None) -> list[str] | None:
    """In a prefork child: apply its parent's remote-control changes; the queues to consume
    (``queues`` when they did not change)."""
    raw = os.environ.get(OVERRIDES_VARIABLE)
    if not raw:
        return queues
    overrides = json.loads(raw)
    for name, limit in overrides.get("rate_limits", {}).items():
        if name in app.tasks:
            app.tasks[name].rate_limit = limit
    for name, (soft, hard) in overrides.get("time_limits", {}).items():
        if name in app.tasks:
            app.tasks[name].soft_time_limit, app.tasks[name].time_limit = soft, hard
    return overrides.get("queues", queues)


def _rusage() -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    fields = (
        "utime stime maxrss ixrss idrss isrss minflt majflt nswap inblock oublock "
        "msgsnd msgrcv nsignals nvcsw nivcsw"
    )
    return {field: getattr(usage, f"ru_{field}") for field in fields.split()}
