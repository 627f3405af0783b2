"""``app.control``: revoking tasks, inspecting workers and purging queues.

Revocations are stored next to the jobs, not in worker memory as in Celery: in the
broker's shared state (see ``spinach.brokers.base``), the expiring set ``compat/revoked``
(with a Redis broker the sorted set ``{<namespace>}/compat/revoked``, task id scored by the
time the revocation expires, ``revoke_expires`` seconds, 3 hours by default as Celery's
``REVOKE_EXPIRES``). So every worker, including one started
after the revocation or restarted, honours it: a revoked id is discarded when a worker
fetches it, and its result becomes REVOKED at once. A worker reads the revoked ids at most
every ``RevokedStore.refresh_interval`` (0.1 s), not once per job: a revocation made in
another process reaches jobs that start after that (Celery's broadcast has a lag as well);
one made in the worker's own process applies at once. ``revoke(terminate=True)`` also stops
the task where it runs, see ``spinach_compat.app.terminate``; ``broadcast`` maps Celery's
remote-control commands onto these, see ``spinach_compat.app.broadcast``.

``inspect()`` answers from the broker's bookkeeping (live workers and their heartbeats,
running jobs, jobs due later), not by a broadcast round trip: a worker answers ``ping``
while it heartbeats. Replies are keyed by node name (``-n``, default ``celery@<host>``).
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .. import states
from ..exceptions import DuplicateNodenameWarning, UnsupportedFeature
from . import stamps
from .priority import band_queues, base_queue, priority_steps
from .terminate import TERM_SIGNAME, Terminations, signum_of

if TYPE_CHECKING:
    from spinach.brokers.base import Broker, WorkerInfo
    from spinach.job import Job

    from .base import Celery

#: Seconds a revocation is remembered (Celery's worker keeps revoked ids for 3 hours).
REVOKE_EXPIRES = 3 * 3600.0

#: Separates the node name from the unique part of a native worker id.
NODE_SEPARATOR = "/"

#: Starts the unique part of the worker id of a prefork pool's child.
PREFORK_MARK = "prefork"

#: Starts the unique part of the worker id of a worker running jobs as greenlets.
GEVENT_MARK = "gevent"


def node_of(worker_id: str) -> str:
    """The node name of a native worker id made by ``worker_id_for`` (else the id itself)."""
    return worker_id.rsplit(NODE_SEPARATOR, 1)[0] if NODE_SEPARATOR in worker_id else worker_id


def worker_id_for(nodename: str, pool: str = "threads") -> str:
    """A unique native worker id carrying the node name (two workers may share a name, as
    the children of a prefork pool do) and, for a prefork child or a gevent worker, its
    pool."""
    prefix = f"{pool}-" if pool in (PREFORK_MARK, GEVENT_MARK) else ""
    return f"{nodename}{NODE_SEPARATOR}{prefix}{uuid.uuid4().hex[:12]}"


def pool_of(worker_id: str) -> str:
    """``prefork`` for a child of a prefork pool, ``gevent`` for a gevent worker, else
    ``threads``."""
    unique = worker_id.rsplit(NODE_SEPARATOR, 1)[-1]
    marked = (m for m in (PREFORK_MARK, GEVENT_MARK) if unique.startswith(f"{m}-"))
    return next(marked, "threads")


class RevokedStore:
    """Revoked task ids, shared by every worker of the app's broker: the expiring set
    ``compat/revoked`` of the broker's shared state (task id -> time it expires)."""

    #: Seconds a worker trusts its copy of the revoked ids before reading them again. Lower
    #: applies another process's revocation sooner; each read is one round trip to Redis
    #: (instead of one per job).
    refresh_interval = 0.1

    #: The broker's shared-state entry holding them.
    name = "compat/revoked"

    def __init__(
        self, app: Celery, expires: float = REVOKE_EXPIRES, clock: Callable[[], float] = time.time
    ):
        self.app = app
        self.expires = expires
        self._clock = clock  # when to read the ids again; their expiry is the broker's
        self._copy: dict[str, float] = {}  # id -> expiry, as read from the broker
        self._copy_read_at = float("-inf")

    def add(self, task_ids: Iterable[str]) -> None:
        """Remember these ids as revoked for ``expires`` seconds."""
        broker = self.app.engine.broker
        revoked = dict.fromkeys(task_ids, broker.now() + self.expires)
        broker.add_members(self.name, revoked)
        self._copy = {**self._copy, **revoked}

    def __contains__(self, task_id: object) -> bool:
        broker = self.app.engine.broker
        until = self._revoked_ids(broker).get(str(task_id))
        return until is not None and until > broker.now()

    def ids(self) -> list[str]:
        """The ids revoked now (their revocation not expired), not the revoked stamps."""
        broker = self.app.engine.broker
        now = broker.now()
        return [
            task_id for task_id, until in self._revoked_ids(broker).items()
            if until > now and not task_id.startswith(stamps.REVOKED_STAMP)
        ]  # fmt: skip

    def read_again(self) -> None:
        """Read the revoked ids from the broker at the next check, not from the copy."""
        self._copy_read_at = float("-inf")

    def _revoked_ids(self, broker: Broker) -> dict[str, float]:
        """The revoked ids with their expiry, read again once ``refresh_interval`` passed."""
        now = self._clock()
        if now - self._copy_read_at >= self.refresh_interval:
            self._copy = broker.members(self.name)
            self._copy_read_at = now
        return self._copy


class Registry:
    """The tasks each worker process registered, for ``inspect().registered()``: the hash
    ``compat/registered`` of the broker's shared state (worker id -> JSON list)."""

    #: The broker's shared-state entry holding them.
    name = "compat/registered"

    def __init__(self, app: Celery):
        self.app = app

    def announce(self, worker_id: str, names: list[str]) -> None:
        self.app.engine.broker.hash_set(self.name, worker_id, json.dumps(names))

    def forget(self, worker_id: str) -> None:
        self.app.engine.broker.hash_delete(self.name, worker_id)

    def of(self, worker_id: str) -> list[str]:
        raw = self.app.engine.broker.hash_get(self.name, worker_id)
        return json.loads(raw) if raw else []


class Control:
    """What ``app.control`` offers: revoke, terminate, inspect, purge, ping, broadcast.

    Celery's other commands (``rate_limit``, ``shutdown``, ``pool_grow``, ...) raise
    ``UnsupportedFeature`` with the reason when read (``spinach_compat.surface.REFUSED``), as
    ``broadcast`` of them does.
    """

    def __init__(self, app: Celery):
        self.app = app
        self.revoked = RevokedStore(app)
        self.terminations = Terminations(app, self.revoked.expires)
        self.registry = Registry(app)

    def revoke(
        self, task_id: str | Iterable[str], destination: Any = None, terminate: bool = False,
        signal: Any = None, **kwargs: Any,
    ) -> list[dict] | None:  # fmt: skip
        """Revoke task ids: each is discarded when fetched, and its result is REVOKED.

        With ``terminate``, a task already running is stopped too (its result REVOKED with
        ``TaskRevokedError('terminated')``). With ``reply=True``, each live worker's reply,
        as Celery's broadcast (see ``broadcast``). Unlike Celery's, a revocation is shared
        by every worker: ``destination`` only limits who replies.
        """
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        if kwargs.get("reply"):
            arguments = {"task_id": ids, "terminate": terminate, "signal": signal}
            return self.broadcast("revoke", arguments, destination, **kwargs)
        signum = signum_of(signal) if terminate else None  # a bad signal name: nothing done
        running = self.running_ids() if terminate else {}
        self.revoked.add(ids)
        for one in ids:
            if one in running:  # the worker stopping it stores REVOKED('terminated')
                continue
            if self.app.backend.get_state_or_none(one) not in states.READY_STATES:
                self.app.backend.mark_as_revoked(one, "revoked")
        if signum is not None:
            self.terminations.request(ids, signum)
        return None

    def terminate(
        self, task_id: str | Iterable[str], destination: Any = None, signal: Any = TERM_SIGNAME,
        **kwargs: Any,
    ) -> list[dict] | None:  # fmt: skip
        """``revoke(task_id, terminate=True, signal=signal)``."""
        return self.revoke(task_id, destination, terminate=True, signal=signal, **kwargs)

    def running_ids(self) -> dict[str, str]:
        """``{task id: node name}`` of the jobs running on live workers."""
        running = self.app.engine.broker.running_jobs()
        return {job.id: node_of(worker) for worker, jobs in running.items() for job in jobs}

    def broadcast(
        self, command: str, arguments: dict | None = None, destination: Any = None,
        connection: Any = None, reply: bool = False, timeout: float = 1.0,
        limit: int | None = None, callback: Callable | None = None, pattern: Any = None,
        matcher: Any = None, **extra: Any,
    ) -> list[dict] | None:  # fmt: skip
        """Celery's remote-control ``command``, done through the broker (see
        ``spinach_compat.app.broadcast``); with ``reply``, ``[{node: reply}, ...]``."""
        from .broadcast import broadcast

        return broadcast(
            self.app, command, arguments or {}, destination, reply=reply, limit=limit,
            callback=callback, pattern=pattern, matcher=matcher,
        )  # fmt: skip

    def is_revoked(self, task_id: str) -> bool:
        """Whether ``task_id`` was revoked (and the revocation has not expired)."""
        return task_id in self.revoked

    def revoke_by_stamped_headers(
        self, headers: dict, destination: Any = None, terminate: bool = False,
        signal: Any = None, **kwargs: Any,
    ) -> list[dict] | None:  # fmt: skip
        """Revoke the tasks carrying one of these stamps (``{header: value or values}``):
        each is discarded when a worker fetches it (its result REVOKED); with
        ``terminate``, the running ones are stopped too. Shared by every worker, as
        ``revoke``; ``destination`` and ``reply`` are not honoured (None is returned)."""
        self.revoked.add(stamps.revoked_keys(headers))
        if not terminate:
            return None
        wanted = set(stamps.revoked_keys(headers))
        running = self.app.engine.broker.running_jobs()
        ids = [
            (job.meta or {}).get("task_id") or job.id for jobs in running.values() for job in jobs
            if wanted & set(stamps.carried_keys((job.meta or {}).get("stamps")))
        ]  # fmt: skip
        signum = signum_of(signal)  # a bad signal name raises before anything is stopped
        if ids:
            self.terminations.request(ids, signum)
        return None

    def is_revoked_by_stamps(self, carried: dict | None) -> bool:
        """Whether one of the ``stamps`` a task carries was revoked; read from the broker,
        not a copy (one round trip per stamped task): a stamp revoked just before its
        workflow was sent is honoured, as Celery's broadcast reaches its workers first."""
        keys = stamps.carried_keys(carried)
        if not keys:
            return False
        self.revoked.read_again()
        return any(key in self.revoked for key in keys)

    def inspect(self, destination: Iterable[str] | None = None, timeout: float = 1.0,
                **kwargs: Any) -> Inspect:  # fmt: skip
        """An ``Inspect`` of the live workers (those named in ``destination`` only)."""
        return Inspect(self.app, destination)

    def ping(self, destination: Iterable[str] | None = None, **kwargs: Any) -> list[dict]:
        """``[{node: {'ok': 'pong'}}, ...]`` of the live workers, as Celery's."""
        return [{node: reply} for node, reply in (self.inspect(destination).ping() or {}).items()]

    def purge(self, connection: Any = None, queues: Iterable[str] | None = None) -> int:
        """Discard the jobs waiting in ``queues``; how many.

        As Celery's, by default the queues a worker consumes without ``-Q`` (``task_queues``,
        else ``task_default_queue``), never a queue tasks are only routed to. ``connection``
        is accepted as Celery's when it is one to the app's own broker.
        """
        from ..worker.queues import declared_queues

        _refuse_other_connection(self.app, connection)
        return purge_queues(self.app, list(queues or declared_queues(self.app)))

    discard_all = purge


class Inspect:
    """Celery's ``inspect()`` built on the broker's inspection API.

    Every method returns ``{node name: reply}``, or None when no worker is alive (as
    Celery when no node replied).
    """

    def __init__(self, app: Celery, destination: Iterable[str] | None = None):
        self.app = app
        self.destination = None if destination is None else set(destination)

    @property
    def broker(self) -> Broker:
        return self.app.engine.broker

    def _live(self) -> list[WorkerInfo]:
        broker = self.broker
        oldest = broker.now() - broker.dead_worker_threshold
        live = [w for w in broker.workers() if w.last_heartbeat >= oldest]
        if self.destination is not None:
            live = [w for w in live if node_of(w.id) in self.destination]
        return sorted(live, key=lambda w: w.id)

    def _reply(self, make: Any) -> dict[str, Any] | None:
        replies: dict[str, Any] = {}
        for info in self._live():
            replies.setdefault(node_of(info.id), make(info))
        return replies or None

    def _nodes(self) -> dict[str, list[WorkerInfo]]:
        """The live worker processes of each node (a prefork pool's children share one)."""
        nodes: dict[str, list[WorkerInfo]] = {}
        for info in self._live():
            nodes.setdefault(node_of(info.id), []).append(info)
        return nodes

    def ping(self) -> dict[str, Any] | None:
        return self._reply(lambda info: {"ok": "pong"})

    def active(self, safe: Any = None) -> dict[str, Any] | None:
        """The tasks running on each worker."""
        running = self.broker.running_jobs()
        replies = {
            node: [_task_info(job, info) for info in infos for job in running.get(info.id, [])]
            for node, infos in self._nodes().items()
        }  # fmt: skip
        return replies or None

    def scheduled(self, safe: Any = None) -> dict[str, Any] | None:
        """Tasks due later (countdown, eta, retries): listed under the first live worker
        consuming their queue, as the broker holds them rather than a worker."""
        live = self._live()
        jobs = self.broker.scheduled_jobs()
        replies: dict[str, list[dict[str, Any]]] = {node_of(info.id): [] for info in live}
        for job in jobs:
            owner = next((i for i in live if job.queue in i.queues), None)
            if owner is not None:
                replies[node_of(owner.id)].append(_scheduled_info(job, owner))
        return replies or None

    def reserved(self, safe: Any = None) -> dict[str, Any] | None:
        """Always empty lists: a native worker fetches only jobs it can start at once."""
        return self._reply(lambda info: [])

    def registered(self, *taskinfoitems: Any) -> dict[str, Any] | None:
        """The tasks each worker registered when it started."""
        return self._reply(lambda info: self.app.control.registry.of(info.id))

    registered_tasks = registered

    def stats(self) -> dict[str, Any] | None:
        """Per worker: pid, pool size, uptime, broker URL."""
        replies = {node: self._stats_of(infos) for node, infos in self._nodes().items()}
        return replies or None

    def _stats_of(self, infos: list[WorkerInfo]) -> dict[str, Any]:
        """One node's stats; a prefork pool's children summed up (their pids listed)."""
        from kombu.utils.url import maybe_sanitize_url

        info = infos[0]
        pool: dict[str, Any] = {"max-concurrency": sum(i.threads for i in infos),
                                "implementation": pool_of(info.id)}  # fmt: skip
        if pool["implementation"] == "prefork":
            pool["processes"] = sorted(i.pid for i in infos)
        return {
            "pid": info.pid,
            "hostname": info.hostname,
            "pool": pool,
            "uptime": max(0, int(self.broker.now() - info.started_at)) if info.started_at else 0,
            "broker": {"url": maybe_sanitize_url(self.app.conf.broker_url)},
            "queues": _base_queues(info.queues),
            "total": {},
        }

    def active_queues(self) -> dict[str, Any] | None:
        return self._reply(
            lambda info: [{"name": q, "routing_key": q} for q in _base_queues(info.queues)]
        )

    def query_task(self, *ids: Any) -> dict[str, Any] | None:
        """Per worker, ``{task id: [state, info]}`` of these ids: 'active' for a task it
        runs, 'scheduled' for one due later that ``scheduled`` lists under it."""
        if len(ids) == 1 and isinstance(ids[0], (list, tuple)):
            ids = tuple(ids[0])
        wanted = set(ids)
        running = self.broker.running_jobs()
        live = self._live()
        later: dict[str, list[tuple[Job, WorkerInfo]]] = {}
        for job in self.broker.scheduled_jobs():
            owner = next((i for i in live if job.queue in i.queues), None)
            if job.id in wanted and owner is not None:
                later.setdefault(node_of(owner.id), []).append((job, owner))

        def found(info: WorkerInfo) -> dict[str, Any]:
            reply = {
                job.id: ["active", _task_info(job, info)]
                for job in running.get(info.id, []) if job.id in wanted
            }  # fmt: skip
            for job, owner in later.pop(node_of(info.id), []):
                reply[job.id] = ["scheduled", _task_info(job, owner)]
            return reply

        return self._reply(found)

    def revoked(self) -> dict[str, Any] | None:
        """The revoked task ids each worker honours: the same for all, as they share them."""
        ids = self.app.control.revoked.ids()
        return self._reply(lambda info: list(ids))


def flatten_reply(reply: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``[{node: reply}, ...]`` (``broadcast(..., reply=True)``) as one ``{node: reply}``;
    a node replying twice warns (``DuplicateNodenameWarning``), the last reply kept."""
    nodes: dict[str, Any] = {}
    dupes: set[str] = set()
    for item in reply:
        dupes.update(name for name in item if name in nodes)
        nodes.update(item)
    if dupes:
        warnings.warn(
            DuplicateNodenameWarning(
                f"Received multiple replies from node {'name' if len(dupes) == 1 else 'names'}"
                f": {', '.join(sorted(dupes))}. Give each worker a unique node name (-n)."
            ),
            stacklevel=2,
        )
    return nodes


def _base_queues(queues: Iterable[str]) -> list[str]:
    """The queues of these native queues, priority bands folded into their queue."""
    return list(dict.fromkeys(base_queue(q) for q in queues))


def _task_info(job: Job, info: WorkerInfo) -> dict[str, Any]:
    return {
        "id": job.id, "name": job.task_name, "type": job.task_name,
        "args": list(job.task_args), "kwargs": dict(job.task_kwargs),
        "hostname": node_of(info.id), "worker_pid": info.pid, "acknowledged": True,
        "delivery_info": {
            "exchange": "", "routing_key": base_queue(job.queue), "redelivered": False,
            "priority": (job.meta or {}).get("priority"),
        },
        "time_start": None,
    }  # fmt: skip


def _scheduled_info(job: Job, info: WorkerInfo) -> dict[str, Any]:
    priority = (job.meta or {}).get("priority")
    return {"eta": job.at.isoformat(), "priority": priority, "request": _task_info(job, info)}


def _refuse_other_connection(app: Celery, connection: Any) -> None:
    """Refuse a kombu connection to another broker than the app's (Celery would use it)."""
    if connection is None:
        return
    url = connection.as_uri(include_password=True) if hasattr(connection, "as_uri") else None
    ours = app.connection_for_write().as_uri(include_password=True)
    if url != ours:
        raise UnsupportedFeature(
            "Control.purge(connection=...) with a connection to another broker: the facade "
            "purges the app's own broker; make an app for the other one"
        )


def purge_queues(app: Celery, queues: list[str]) -> int:
    """Discard the jobs waiting in ``queues`` through the broker API: as another worker
    process, registered for the time it takes, fetch them and end them (each queue with
    its priority bands)."""
    from spinach.brokers.base import WorkerInfo

    queues = band_queues(queues, priority_steps(app.conf))
    broker = _other_process(app)
    broker.set_namespace(app.namespace)
    broker.start()
    broker.register_worker(WorkerInfo(id=broker.worker_id, queues=queues, threads=0))
    purged = 0
    try:
        while jobs := broker.get_jobs_from_queue(queues, 100):
            for job in jobs:
                broker.remove_job_from_running(job)
            purged += len(jobs)
    finally:
        broker.deregister_worker()
        broker.stop()
    return purged


def _other_process(app: Celery) -> Broker:
    from .brokers import other_process

    worker_id = f"purge{NODE_SEPARATOR}{uuid.uuid4().hex[:12]}"
    return other_process(app.engine.broker, app.conf.broker_url, worker_id)


from ..surface import module_getattr, refuse_missing  # noqa: E402  (see surface.REFUSED)

refuse_missing(Control, "celery.app.control.Control")
refuse_missing(Inspect, "celery.app.control.Inspect")
__getattr__ = module_getattr(__name__)
