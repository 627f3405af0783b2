"""``task-sent``: sent by ``delay()``, ``apply_async()`` and ``send_task()`` once a task's
message is published, when ``task_send_sent_event`` is True (Celery's producer side).

Published in the caller's thread (one Redis ``PUBLISH``), best effort as every event: an
error is logged once per outage and never reaches the caller.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING, Any

from spinach.forks import at_fork_in_child

from ..utils.saferepr import args_reprs
from .dispatcher import EventDispatcher

if TYPE_CHECKING:
    from ..app.base import Celery

_dispatchers: weakref.WeakKeyDictionary[Any, dict[str | None, EventDispatcher]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


@at_fork_in_child
def _unlock_after_fork() -> None:
    """A forked child's own lock: a parent's thread may have held it at the fork (a
    ``delay()`` sending ``task-sent``), and that thread does not exist in the child."""
    global _lock
    _lock = threading.Lock()


def dispatcher_of(app: Celery, hostname: str | None = None) -> EventDispatcher:
    """The app's dispatcher publishing in the caller's thread as ``hostname`` (default:
    this process's ``gen<pid>@host``), one per process, made at first use."""
    with _lock:
        mine = _dispatchers.setdefault(app, {})
        dispatcher = mine.get(hostname)
        if dispatcher is None or dispatcher.pid != os.getpid():
            dispatcher = mine[hostname] = EventDispatcher(app=app, hostname=hostname)
        return dispatcher


def send_task_sent(app: Celery, message: Any) -> None:
    """Send ``task-sent`` for ``message`` (a ``spinach_compat.app.publish.Message``): its
    ``argsrepr``/``kwargsrepr`` options for args and kwargs, else their reprs (as Celery's)."""
    meta = message.meta
    args, kwargs = meta.get("argsrepr"), meta.get("kwargsrepr")
    if args is None or kwargs is None:
        default_args, default_kwargs = args_reprs(tuple(message.args), message.kwargs)
        args = default_args if args is None else args
        kwargs = default_kwargs if kwargs is None else kwargs
    dispatcher_of(app).send(
        "task-sent", uuid=message.task_id, root_id=meta.get("root_id"),
        parent_id=meta.get("parent_id"), name=message.name,
        args=args, kwargs=kwargs, retries=0,
        eta=meta.get("eta"), expires=meta.get("expires"), queue=message.routing_key,
        exchange="", routing_key=message.routing_key,
    )  # fmt: skip
