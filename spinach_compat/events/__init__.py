"""Celery's events, as facade processes send them: ``celery events`` and Flower, pointed at
the same broker, see facade workers and their tasks.

Every worker sends the worker events (``worker-online``, ``worker-heartbeat``,
``worker-offline``); one started with ``-E`` (or ``worker_send_task_events = True``) also
sends the task events (``task-received``, ``task-started``, ``task-succeeded``,
``task-failed``, ``task-retried``, ``task-rejected``, ``task-revoked``);
``task_send_sent_event = True`` makes ``delay()`` and ``apply_async()`` send
``task-sent``. They go through kombu to the broker's ``celeryev`` exchange in Celery's wire
format (``event``), best effort (``dispatcher``). ``EventReceiver`` reads them
(``spinach-compat events --dump``, ``app.events.Receiver``); ``State`` follows what they
say.
"""

from __future__ import annotations

from .dispatcher import EventDispatcher
from .event import Event, event_exchange, get_exchange, group_from
from .receiver import EventReceiver
from .state import State

__all__ = [
    "Event", "EventDispatcher", "EventReceiver", "State", "event_exchange", "get_exchange",
    "group_from",
]  # fmt: skip

from ..surface import module_getattr  # Celery names refused: see surface

__getattr__ = module_getattr(__name__)
