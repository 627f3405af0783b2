"""The remote-control side of a running worker process: its task counts and its mailbox.

A threads or solo worker is a node of its own: ``start_node`` counts its tasks and starts
its mailbox thread (``spinach_compat.worker.pidbox``), unless ``worker_enable_remote_control``
is off. A prefork child only counts its tasks, in the broker, for its parent: the parent is
the node that answers (``start_prefork_node``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .consumer import PreforkConsumer, TaskTotals, ThreadsConsumer
from .pidbox import Pidbox

if TYPE_CHECKING:
    from ..app.base import Celery


class RemoteNode:
    """What ``start_node`` started; ``stop()`` ends it (idempotent)."""

    def __init__(self, totals: TaskTotals, pidbox: Pidbox | None = None):
        self.totals = totals
        self.pidbox = pidbox

    def stop(self) -> None:
        if self.pidbox is not None:
            self.pidbox.stop()
        self.totals.disconnect()


def remote_control_enabled(app: Celery) -> bool:
    """Celery's ``worker_enable_remote_control`` (on by default)."""
    return app.conf.get("worker_enable_remote_control", True) is not False


def start_node(
    app: Celery, hostname: str, queues: Sequence[str], pool: str,
    on_shutdown: Callable[[], None] | None = None,
) -> RemoteNode:  # fmt: skip
    """Count the tasks of this worker process and, unless it is a prefork child, answer
    remote control as ``hostname``. ``on_shutdown`` is the remote ``shutdown`` (by default
    a warm stop of the app's workers)."""
    if pool == "prefork":
        totals = TaskTotals(app, hostname, shared_by=os.getppid())
        totals.connect()
        return RemoteNode(totals)
    totals = TaskTotals(app, hostname)
    totals.connect()
    if not remote_control_enabled(app):
        return RemoteNode(totals)
    consumer = ThreadsConsumer(
        app, hostname, list(queues), totals, pool, on_shutdown or _stopper(app)
    )
    pidbox = Pidbox(app, hostname, consumer)
    pidbox.start()
    return RemoteNode(totals, pidbox)


def start_prefork_node(
    app: Celery, hostname: str, queues: Sequence[str], autoscaler: Any
) -> tuple[RemoteNode, PreforkConsumer]:
    """The mailbox of a prefork pool's parent; give its consumer the supervisor once made."""
    totals = TaskTotals(app, hostname, shared_by=os.getpid())
    consumer = PreforkConsumer(app, hostname, list(queues), totals, autoscaler)
    pidbox = Pidbox(app, hostname, consumer) if remote_control_enabled(app) else None
    if pidbox is not None:
        pidbox.start()
    return RemoteNode(totals, pidbox), consumer


def _stopper(app: Celery) -> Callable[[], None]:
    """A warm stop of the app's workers in a thread of its own (not the mailbox's, which
    the stop ends)."""

    def stop() -> None:
        threading.Thread(target=app.stop_worker, name="remote-shutdown").start()

    return stop
