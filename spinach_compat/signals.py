"""Celery's signals, under the same names, sent with the same keyword arguments.

Receivers are called as ``receiver(sender=..., signal=..., **kwargs)``; connect with
``@task_success.connect`` or ``@task_success.connect(sender="proj.tasks.add")`` (a task name
or task object). Unlike Celery's default, a receiver that raises is logged and skipped, so a
broken receiver never fails a task. As in Celery, receivers are held weakly unless
``weak=False``, one garbage-collected is dropped (a new receiver at its address, or with
its ``dispatch_uid``, connects), and a receiver is connected once per (``dispatch_uid``,
else the receiver itself; sender).

Sent by the facade: ``before_task_publish``, ``after_task_publish``, ``task_received`` (when
a worker starts the job, after the revocation check; sender None), ``task_prerun``,
``task_postrun``, ``task_success``, ``task_failure``, ``task_retry``, ``task_revoked``,
``task_unknown`` (a fetched job names no registered task: it is dead-lettered),
``task_internal_error``; by the worker command (``spinach_compat.worker``):
``celeryd_init``, ``setup_logging``, ``after_setup_logger``, ``after_setup_task_logger``,
``import_modules``, ``worker_init``, ``celeryd_after_setup``, ``worker_process_init`` (once
per worker process: tasks run in its threads), ``worker_ready``, ``worker_shutting_down``,
``worker_process_shutdown``, ``worker_shutdown``.

Defined so that imports and ``connect`` keep working, but **not sent**: ``task_rejected``,
``task_sent``, ``worker_before_create_process``, ``heartbeat_sent``, the beat signals (there
is no beat process) and ``user_preload_options``.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from spinach.forks import reset_after_fork

logger = logging.getLogger("spinach_compat.signals")

_ANY = object()


def _sender_key(sender: Any) -> Any:
    """Senders match by task name, so a task object and its name are the same sender."""
    if sender is None:
        return _ANY
    return getattr(sender, "name", sender) if not isinstance(sender, str) else sender


class Signal:
    """A signal receivers connect to; ``send`` calls them with keyword arguments."""

    def __init__(self, name: str, providing_args: Any = None, doc: str | None = None):
        self.name = name
        self.__doc__ = doc
        self._lock = threading.Lock()
        self._receivers: list[tuple[Any, Any, Any]] = []  # (uid, sender key, ref)
        self._dead = False  # a weak receiver died: drop it before the next lookup
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: a parent's thread may have held the lock at the fork."""
        self._lock = threading.Lock()

    def connect(self, *args: Any, **kwargs: Any) -> Callable:
        """Connect a receiver: ``connect(fn)``, ``@connect`` or ``@connect(sender=...)``."""
        if args and callable(args[0]):
            return self._connect(args[0], **kwargs)
        return lambda fn: self._connect(fn, **kwargs)

    def _connect(
        self, receiver: Callable, sender: Any = None, weak: bool = True, dispatch_uid: Any = None
    ) -> Callable:
        uid = dispatch_uid or _receiver_id(receiver)
        ref: Any = _make_ref(receiver, self._mark_dead) if weak else (lambda r=receiver: r)
        with self._lock:
            self._drop_dead()  # a dead receiver's id or uid may be a new one's
            key = _sender_key(sender)
            if not any(u == uid and k == key for u, k, _ in self._receivers):
                self._receivers.append((uid, key, ref))
        return receiver

    def _mark_dead(self, _ref: Any = None) -> None:
        """Weak reference callback: only a flag, as the collector may run under the lock."""
        self._dead = True

    def _drop_dead(self) -> None:
        """Forget the receivers garbage-collected since (the lock held)."""
        if self._dead:
            self._dead = False
            self._receivers = [r for r in self._receivers if r[2]() is not None]

    def disconnect(
        self, receiver: Callable | None = None, sender: Any = None, dispatch_uid: Any = None
    ) -> bool:
        """Disconnect a receiver; whether it was connected."""
        uid = dispatch_uid or _receiver_id(receiver)
        key = _sender_key(sender)
        with self._lock:
            self._drop_dead()
            before = len(self._receivers)
            self._receivers = [r for r in self._receivers if not (r[0] == uid and r[1] == key)]
            return len(self._receivers) != before

    @property
    def receivers(self) -> list[Callable]:
        with self._lock:
            self._drop_dead()
            refs = [ref for _, _, ref in self._receivers]
        return [r for r in (ref() for ref in refs) if r is not None]

    @property
    def has_receivers(self) -> bool:
        """Whether any receiver is connected (one garbage-collected may still count): the
        cheap check of a hot path, before it prepares what a send would pass."""
        return bool(self._receivers)

    def send(self, sender: Any, **named: Any) -> list[tuple[Callable, Any]]:
        """Call the receivers of ``sender``; a failing one is logged and skipped."""
        if not self.has_receivers:
            return []
        key = _sender_key(sender)
        with self._lock:
            self._drop_dead()
            refs = [ref for _, k, ref in self._receivers if k is _ANY or k == key]
        responses = []
        for receiver in filter(None, (ref() for ref in refs)):
            try:
                responses.append((receiver, receiver(signal=self, sender=sender, **named)))
            except Exception as exc:
                logger.exception("Signal receiver %r of %s raised", receiver, self.name)
                responses.append((receiver, exc))
        return responses

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"


def _receiver_id(receiver: Any) -> Any:
    if hasattr(receiver, "__func__"):
        return (id(receiver.__self__), id(receiver.__func__))
    return id(receiver)


def _make_ref(receiver: Callable, on_death: Callable[[Any], None]) -> Callable[[], Any]:
    """A weak reference to ``receiver`` calling ``on_death`` when it is collected (a strong
    one when it cannot be weakly referenced)."""
    if hasattr(receiver, "__func__"):
        return weakref.WeakMethod(receiver, on_death)
    try:
        return weakref.ref(receiver, on_death)
    except TypeError:
        return lambda: receiver


# -- sent ----------------------------------------------------------------------------------
before_task_publish = Signal(
    "before_task_publish",
    doc="Before a task is published (body, exchange, routing_key, headers, properties, "
    "declare, retry_policy); sender is the task name.",
)
after_task_publish = Signal(
    "after_task_publish",
    doc="After a task is published (body, exchange, routing_key); sender is the task name.",
)
task_prerun = Signal("task_prerun", doc="Before a task runs (task_id, task, args, kwargs).")
task_postrun = Signal(
    "task_postrun", doc="After a task ran (task_id, task, args, kwargs, retval, state)."
)
task_success = Signal("task_success", doc="A task succeeded (result).")
task_failure = Signal(
    "task_failure",
    doc="A task failed (task_id, exception, args, kwargs, traceback, einfo).",
)
task_retry = Signal("task_retry", doc="A task will be retried (request, reason, einfo).")
task_revoked = Signal(
    "task_revoked", doc="A task was revoked or expired (request, terminated, signum, expired)."
)
task_internal_error = Signal(
    "task_internal_error",
    doc="The facade failed around a task (task_id, args, kwargs, request, exception, "
    "traceback, einfo).",
)

# -- worker signals, and those defined but not sent ---------------------------------
task_received = Signal("task_received", doc="Sent, as Celery's.")
task_rejected = Signal("task_rejected", doc="Not sent.")
task_unknown = Signal("task_unknown", doc="Sent, as Celery's.")
task_sent = Signal("task_sent", doc="Not sent yet (deprecated in Celery).")
celeryd_init = Signal("celeryd_init", doc="Sent, as Celery's.")
celeryd_after_setup = Signal("celeryd_after_setup", doc="Sent, as Celery's.")
import_modules = Signal("import_modules", doc="Sent, as Celery's.")
worker_init = Signal("worker_init", doc="Sent, as Celery's.")
worker_before_create_process = Signal("worker_before_create_process", doc="Not sent.")
worker_process_init = Signal("worker_process_init", doc="Sent, as Celery's.")
worker_process_shutdown = Signal("worker_process_shutdown", doc="Sent, as Celery's.")
worker_ready = Signal("worker_ready", doc="Sent, as Celery's.")
worker_shutdown = Signal("worker_shutdown", doc="Sent, as Celery's.")
worker_shutting_down = Signal("worker_shutting_down", doc="Sent, as Celery's.")
heartbeat_sent = Signal("heartbeat_sent", doc="Not sent.")
setup_logging = Signal("setup_logging", doc="Sent, as Celery's.")
after_setup_logger = Signal("after_setup_logger", doc="Sent, as Celery's.")
after_setup_task_logger = Signal("after_setup_task_logger", doc="Sent, as Celery's.")
beat_init = Signal("beat_init", doc="Sent when a beat first leads (spinach_compat.beat).")
beat_embedded_init = Signal("beat_embedded_init", doc="Sent with beat_init by worker -B.")
user_preload_options = Signal("user_preload_options", doc="Not sent.")


from .surface import module_getattr  # noqa: E402  (Celery names refused: see surface)

__getattr__ = module_getattr(__name__)
