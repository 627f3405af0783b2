"""Sending tasks to legacy Celery workers: Celery protocol 2 messages, published by kombu.

A task is *legacy* when its name matches a pattern of the ``spinach_legacy_tasks`` setting
(fnmatch, e.g. ``['proj.tasks.old_*']``) or its ``task_routes`` entry says
``{'legacy': True, 'queue': ...}``. Its ``apply_async``/``send_task`` then publishes a
message on the kombu Redis transport of ``broker_url`` (the list named after the queue),
which unmodified Celery workers consume; their results, in ``celery-task-meta-<id>``, are
read by the facade's ``AsyncResult``. Moving a task back to the native engine is removing
it from the setting.
"""

from __future__ import annotations

import fnmatch
import threading
from typing import TYPE_CHECKING, Protocol

from kombu import Connection, pools

from spinach.brokers.redis_layout import split_url
from spinach.forks import at_fork_in_child
from spinach.history import given_reprs

from ..app import routes
from ..exceptions import UnsupportedFeature
from ..utils.saferepr import args_reprs

if TYPE_CHECKING:
    from ..app.base import Celery
    from ..app.defaults import Settings


class Configured(Protocol):
    """What sending to legacy workers needs of an app: its settings."""

    @property
    def conf(self) -> Settings: ...


_connections: dict[str, Connection] = {}
_lock = threading.Lock()


@at_fork_in_child
def _forget_after_fork() -> None:
    """In a forked child: its own lock (a parent's thread may have held this one) and its
    own connections (the parent's sockets are not the child's to use)."""
    global _lock
    _lock = threading.Lock()
    _connections.clear()


def is_legacy(app: Configured, name: str, routers: list[routes.Router] | None = None) -> bool:
    """Whether ``name`` is sent to legacy Celery workers (see the module docstring):
    decided by the name, so by the mapping routes only (``routers``: ``task_routes``
    already prepared)."""
    patterns = app.conf.get("spinach_legacy_tasks") or ()
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
        return True
    if routers is None:
        routers = routes.prepare(app.conf.task_routes)
    route = routes.route_for(routers, name, static=True)
    return bool(route and route.get("legacy"))


def legacy_queues(app: Celery) -> set[str]:
    """The queues that tasks routed to legacy Celery workers are published to."""
    queues = {app.queue_of(task, name) for name, task in app.tasks.items() if is_legacy(app, name)}
    for router in routes.prepare(app.conf.task_routes):
        if isinstance(router, routes.MapRoute):
            queues |= {
                route["queue"]
                for route in router.routes()
                if isinstance(route, dict) and route.get("legacy") and route.get("queue")
            }
    return queues


def headers_of(name: str, task_id: str, args: list, kwargs: dict, meta: dict) -> dict:
    """Celery protocol 2 headers of a task sent by ``publish`` (its meta); its reprs are
    the caller's (a header over the option, as Celery's), else those of the arguments."""
    given_args, given_kwargs = given_reprs(meta)
    made_args, made_kwargs = args_reprs(tuple(args), kwargs)
    return {
        **meta["headers"],
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": None,
        "eta": meta["eta"],
        "expires": meta["expires"],
        "group": meta.get("group"),
        "group_index": meta.get("group_index"),
        "retries": 0,
        "timelimit": meta["timelimit"] or [None, None],
        "root_id": meta["root_id"],
        "parent_id": meta["parent_id"],
        "argsrepr": made_args if given_args is None else given_args,
        "kwargsrepr": made_kwargs if given_kwargs is None else given_kwargs,
        "origin": meta["origin"],
        "ignore_result": bool(meta["ignore_result"]),
    }


def refuse_what_is_not_carried(name: str, meta: dict) -> None:
    """Raise ``UnsupportedFeature`` for options a message to legacy workers would lose."""
    lost = [option for option in ("callbacks", "errbacks") if meta.get(option)]
    lost += ["priority"] if meta.get("priority") else []
    if lost:
        raise UnsupportedFeature(
            f"task {name!r} is routed to legacy Celery workers, which would not get its "
            f"{', '.join(lost)} (link/link_error/priority are not carried to them yet; "
            "see migration_guide/features.md#interop-with-celery)"
        )


def send(
    app: Configured, name: str, task_id: str, args: list, kwargs: dict, queue: str, meta: dict,
    retry_policy: dict | None,
) -> None:  # fmt: skip
    """Publish the Celery message of one task on ``queue``, as a Celery client does."""
    body = (args, kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None})
    with pools.producers[_connection(app.conf.broker_url)].acquire(block=True) as producer:
        producer.publish(
            body, exchange="", routing_key=queue, serializer="json",
            headers=headers_of(name, task_id, args, kwargs, meta), correlation_id=task_id,
            delivery_mode=2, retry=retry_policy is not None, retry_policy=retry_policy,
        )  # fmt: skip


def _connection(url: str) -> Connection:
    """One kombu connection per broker URL, the key of kombu's producer pool."""
    with _lock:
        if url not in _connections:
            _connections[url] = Connection(split_url(url)[0])  # no native ?partitions=N
        return _connections[url]
