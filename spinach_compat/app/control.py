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
the task where it runs, see ``spinach_compat.app.terminate``; it is broadcast too, so
that Celery's workers on the same broker honour it as well.

``inspect()`` and the other commands are Celery's broadcast round trip through its mailbox
(see ``spinach_compat.app.broadcast``): the facade's worker nodes answer them
(``spinach_compat.worker.control``), and so do Celery's on the same broker.
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kombu.pidbox import Mailbox
from kombu.utils.encoding import safe_repr

from spinach.history import given_reprs

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
    """``app.control``: Celery's remote-control client, plus the shared revocations.

    Commands are broadcast through Celery's mailbox (``spinach_compat.app.broadcast``), so
    the facade's worker nodes and Celery's answer them; ``revoke`` is also stored in the
    broker for every worker, including those started later. ``election`` and
    ``pool_restart`` raise ``UnsupportedFeature`` (``surface.REFUSED``): a worker answers
    them with an error.
    """

    #: kombu's mailbox class, as Celery's ``Control.Mailbox``.
    Mailbox = Mailbox

    def __init__(self, app: Celery):
        self.app = app
        self.revoked = RevokedStore(app)
        self.terminations = Terminations(app, self.revoked.expires)
        self.registry = Registry(app)

    @property
    def mailbox(self) -> Any:
        """Celery's broadcast mailbox (kombu's ``Mailbox``) of the app."""
        from ..worker.pidbox import mailbox

        return mailbox(self.app)

    def revoke(
        self, task_id: str | Iterable[str], destination: Any = None, terminate: bool = False,
        signal: Any = None, **kwargs: Any,
    ) -> list[dict] | None:  # fmt: skip
        """Revoke task ids: each is discarded when fetched, and its result is REVOKED.

        With ``terminate``, a task already running is stopped too (its result REVOKED with
        ``TaskRevokedError('terminated')``). The revocation is stored for every worker
        (``destination`` only limits who is told and replies) and broadcast as Celery's;
        with ``reply=True``, the workers' replies.
        """
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        self.store_revocation(ids, terminate=terminate, signal=signal)
        arguments = {"task_id": ids, "terminate": terminate, "signal": signal}
        return self.broadcast("revoke", arguments, destination, **kwargs)

    def store_revocation(self, ids: list[str], terminate: bool = False, signal: Any = None) -> None:
        """Revoke ``ids`` in the shared store (and ask for their termination)."""
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
        limit: int | None = None, callback: Callable | None = None, channel: Any = None,
        pattern: Any = None, matcher: Any = None, **extra: Any,
    ) -> list[dict] | None:  # fmt: skip
        """Send Celery's remote-control ``command`` to the workers (those in
        ``destination``, or matching ``pattern``); with ``reply``, ``[{node: reply}, ...]``
        (see ``spinach_compat.app.broadcast``)."""
        from .broadcast import broadcast

        return broadcast(
            self.app, command, arguments or {}, destination, reply=reply, timeout=timeout,
            limit=limit, callback=callback, pattern=pattern, matcher=matcher,
            connection=connection,
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
        ``terminate``, the running ones are stopped too. Stored for every worker, and
        broadcast as Celery's (with ``reply=True``, the workers' replies)."""
        self.store_stamped_revocation(headers, terminate=terminate, signal=signal)
        arguments = {"headers": headers, "terminate": terminate, "signal": signal}
        return self.broadcast("revoke_by_stamped_headers", arguments, destination, **kwargs)

    def store_stamped_revocation(
        self, headers: dict, terminate: bool = False, signal: Any = None
    ) -> None:
        """Revoke these stamps in the shared store (and terminate their running tasks)."""
        self.revoked.add(stamps.revoked_keys(headers))
        if not terminate:
            return
        wanted = set(stamps.revoked_keys(headers))
        running = self.app.engine.broker.running_jobs()
        ids = [
            (job.meta or {}).get("task_id") or job.id for jobs in running.values() for job in jobs
            if wanted & set(stamps.carried_keys((job.meta or {}).get("stamps")))
        ]  # fmt: skip
        signum = signum_of(signal)  # a bad signal name raises before anything is stopped
        if ids:
            self.terminations.request(ids, signum)

    def is_revoked_by_stamps(self, carried: dict | None) -> bool:
        """Whether one of the ``stamps`` a task carries was revoked; read from the broker,
        not a copy (one round trip per stamped task): a stamp revoked just before its
        workflow was sent is honoured, as Celery's broadcast reaches its workers first."""
        keys = stamps.carried_keys(carried)
        if not keys:
            return False
        self.revoked.read_again()
        return any(key in self.revoked for key in keys)

    def inspect(self, destination: Any = None, timeout: float = 1.0, callback: Any = None,
                connection: Any = None, limit: int | None = None, pattern: Any = None,
                matcher: Any = None, **kwargs: Any) -> Inspect:  # fmt: skip
        """An ``Inspect`` of the workers (those in ``destination``, or matching ``pattern``)."""
        return Inspect(destination, timeout, callback, connection, self.app, limit, pattern,
                       matcher)  # fmt: skip

    def ping(self, destination: Any = None, timeout: float = 1.0, **kwargs: Any) -> list | None:
        """``[{node: {'ok': 'pong'}}, ...]`` of the workers that replied."""
        return self.broadcast("ping", reply=True, destination=destination, timeout=timeout,
                              **kwargs)  # fmt: skip

    def _command(self, command: str, destination: Any, kwargs: dict, **arguments: Any) -> Any:
        return self.broadcast(command, arguments, destination, **kwargs)

    def rate_limit(self, task_name: str, rate_limit: Any, destination: Any = None,
                   **kwargs: Any) -> Any:  # fmt: skip
        """Tell the workers to change a task's rate limit."""
        return self._command("rate_limit", destination, kwargs, task_name=task_name,
                             rate_limit=rate_limit)  # fmt: skip

    def time_limit(self, task_name: str, soft: Any = None, hard: Any = None,
                   destination: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        """Tell the workers to change a task's time limits."""
        return self._command("time_limit", destination, kwargs, task_name=task_name,
                             soft=soft, hard=hard)  # fmt: skip

    def add_consumer(self, queue: str, exchange: Any = None, exchange_type: str = "direct",
                     routing_key: Any = None, options: dict | None = None,
                     destination: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        """Tell the workers to consume one more queue."""
        return self._command("add_consumer", destination, kwargs, queue=queue,
                             exchange=exchange, exchange_type=exchange_type,
                             routing_key=routing_key, **(options or {}))  # fmt: skip

    def cancel_consumer(self, queue: str, destination: Any = None, **kwargs: Any) -> Any:
        """Tell the workers to stop consuming a queue."""
        return self._command("cancel_consumer", destination, kwargs, queue=queue)

    def pool_grow(self, n: int = 1, destination: Any = None, **kwargs: Any) -> Any:
        """Tell prefork workers to start n more children."""
        return self._command("pool_grow", destination, kwargs, n=n)

    def pool_shrink(self, n: int = 1, destination: Any = None, **kwargs: Any) -> Any:
        """Tell prefork workers to stop n idle children."""
        return self._command("pool_shrink", destination, kwargs, n=n)

    def autoscale(self, max: int, min: int, destination: Any = None, **kwargs: Any) -> Any:
        """Tell autoscaled prefork workers their new bounds."""
        return self._command("autoscale", destination, kwargs, max=max, min=min)

    def shutdown(self, destination: Any = None, **kwargs: Any) -> Any:
        """Warm shutdown of the workers (they do not reply, as Celery's)."""
        return self._command("shutdown", destination, kwargs)

    def enable_events(self, destination: Any = None, **kwargs: Any) -> Any:
        """Tell the workers to send task events (threads and solo pools; prefork refuses)."""
        return self._command("enable_events", destination, kwargs)

    def disable_events(self, destination: Any = None, **kwargs: Any) -> Any:
        """Tell the workers to stop sending task events."""
        return self._command("disable_events", destination, kwargs)

    def heartbeat(self, destination: Any = None, **kwargs: Any) -> Any:
        """Ask the workers for a worker-heartbeat event now (no reply, as Celery's)."""
        return self._command("heartbeat", destination, kwargs)

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
    """Celery's ``inspect()``: each method broadcasts its command and returns
    ``{node name: reply}`` (the reply alone when ``destination`` is one name), or None
    when no worker replied (as Celery's)."""

    def __init__(
        self, destination: Any = None, timeout: float = 1.0, callback: Any = None,
        connection: Any = None, app: Any = None, limit: int | None = None,
        pattern: Any = None, matcher: Any = None,
    ):  # fmt: skip
        if app is None:
            from .._state import get_current_app

            app = get_current_app()
        self.app = app
        self.destination = destination
        self.timeout = timeout
        self.callback = callback
        self.connection = connection
        self.limit = limit
        self.pattern = pattern
        self.matcher = matcher

    def _prepare(self, reply: list[dict] | None) -> Any:
        if not reply:
            return None
        by_node = flatten_reply(reply)
        if self.destination and not isinstance(self.destination, (list, tuple, set)):
            return by_node.get(self.destination)
        if self.pattern:
            from kombu.matcher import match

            return {n: r for n, r in by_node.items()
                    if match(n, self.pattern, self.matcher)}  # type: ignore[arg-type]  # fmt: skip
        return by_node

    def _request(self, command: str, **kwargs: Any) -> Any:
        destination = self.destination
        if isinstance(destination, set):
            destination = sorted(destination)
        return self._prepare(self.app.control.broadcast(
            command, arguments=kwargs, destination=destination, callback=self.callback,
            connection=self.connection, limit=self.limit, timeout=self.timeout, reply=True,
            pattern=self.pattern, matcher=self.matcher,
        ))  # fmt: skip

    def report(self) -> Any:
        return self._request("report")

    def clock(self) -> Any:
        return self._request("clock")

    def active(self, safe: Any = None) -> Any:
        """The tasks running on each worker."""
        return self._request("active", safe=safe)

    def scheduled(self, safe: Any = None) -> Any:
        """Tasks due later (countdown, eta, retries) in each worker's queues."""
        return self._request("scheduled")

    def reserved(self, safe: Any = None) -> Any:
        """Empty lists from facade workers: they fetch only jobs they start at once."""
        return self._request("reserved")

    def stats(self) -> Any:
        return self._request("stats")

    def revoked(self) -> Any:
        return self._request("revoked")

    def registered(self, *taskinfoitems: Any) -> Any:
        return self._request("registered", taskinfoitems=taskinfoitems)

    registered_tasks = registered

    def ping(self, destination: Any = None) -> Any:
        return self._request("ping")

    def active_queues(self) -> Any:
        return self._request("active_queues")

    def query_task(self, *ids: Any) -> Any:
        """Per worker, ``{task id: [state, info]}`` of these ids."""
        if len(ids) == 1 and isinstance(ids[0], (list, tuple)):
            ids = tuple(ids[0])
        return self._request("query_task", ids=list(ids))

    def conf(self, with_defaults: bool = False) -> Any:
        return self._request("conf", with_defaults=with_defaults)

    def hello(self, from_node: str, revoked: Any = None) -> Any:
        return self._request("hello", from_node=from_node, revoked=revoked)

    def memsample(self) -> Any:
        return self._request("memsample")

    def memdump(self, samples: int = 10) -> Any:
        return self._request("memdump", samples=samples)

    def objgraph(self, type: str = "Request", n: int = 200, max_depth: int = 10) -> Any:
        return self._request("objgraph", num=n, max_depth=max_depth, type=type)


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


def task_info(job: Job, info: WorkerInfo, safe: bool = False) -> dict[str, Any]:
    """Celery's request info of a running job; ``safe``: its arguments as the texts shown
    in their place (``argsrepr``/``kwargsrepr``, given or made), as Celery's ``safe``."""
    args: Any = list(job.task_args)
    kwargs: Any = dict(job.task_kwargs)
    if safe:
        args, kwargs = reprs_of(job)
    return {
        "id": job.id, "name": job.task_name, "type": job.task_name,
        "args": args, "kwargs": kwargs,
        "hostname": node_of(info.id), "worker_pid": info.pid, "acknowledged": True,
        "delivery_info": {
            "exchange": "", "routing_key": base_queue(job.queue), "redelivered": False,
            "priority": (job.meta or {}).get("priority"),
        },
        "time_start": None,
    }  # fmt: skip


def scheduled_info(job: Job, info: WorkerInfo) -> dict[str, Any]:
    priority = (job.meta or {}).get("priority")
    return {"eta": job.at.isoformat(), "priority": priority, "request": task_info(job, info)}


def reprs_of(job: Job) -> tuple[str, str]:
    """The ``argsrepr``/``kwargsrepr`` of a job: its message's (headers first, as the
    worker's request reads them), else the reprs of its arguments."""
    args, kwargs = given_reprs(job.meta)
    if not isinstance(args, str):
        args = safe_repr(tuple(job.task_args))
    if not isinstance(kwargs, str):
        kwargs = safe_repr(dict(job.task_kwargs))
    return args, kwargs


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
