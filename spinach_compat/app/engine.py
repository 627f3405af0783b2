"""The native engine as the facade runs it: a job naming no registered task is handled as
Celery's worker handles an unknown task (``task_unknown``, FAILURE with ``NotRegistered``)."""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING

from spinach import Engine
from spinach import signals as native_signals
from spinach.brokers.base import Broker
from spinach.job import Job

from .. import signals
from ..exceptions import NotRegistered

if TYPE_CHECKING:
    from .base import Celery

logger = logging.getLogger(__name__)


def compat_engine(broker: Broker, namespace: str) -> Engine:
    """A native engine whose dead-lettered unknown jobs send ``task_unknown``.

    The job is then dead-lettered by the engine, as any native one (see
    ``spinach dead-letters``).
    """
    engine = Engine(broker, namespace=namespace)
    native_signals.job_dead_lettered.connect(_send_task_unknown, sender=namespace)
    return engine


def _send_task_unknown(sender: str, job: Job, reason: str) -> None:
    signals.task_unknown.send(
        sender=None, message=job.to_dict(), exc=NotRegistered(job.task_name),
        name=job.task_name, id=job.id,
    )  # fmt: skip


class UnknownTaskReporter:
    """Stores FAILURE with ``NotRegistered`` for a dead-lettered job of an unknown task, as
    Celery's worker does, so that ``get()`` raises at once instead of waiting forever.

    Connected weakly to the engine's ``job_dead_lettered`` signal: the app keeps it.
    """

    def __init__(self, app: Celery):
        self._app = weakref.ref(app)

    def connect(self, namespace: str) -> None:
        native_signals.job_dead_lettered.connect(self, sender=namespace)

    def __call__(self, sender: str, job: Job, reason: str) -> None:
        app = self._app()
        if app is None or not job.id:
            return
        task_id = (job.meta or {}).get("task_id") or job.id  # a replacing task's: its own
        app.backend.mark_as_failure(task_id, NotRegistered(job.task_name))
        logger.error("Received unregistered task %r (id %s): %s", job.task_name, task_id, reason)
