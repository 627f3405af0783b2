"""The native engine as the facade runs it: Celery's ``task_unknown`` from its signal."""

from __future__ import annotations

from spinach import Engine
from spinach import signals as native_signals
from spinach.brokers.base import Broker
from spinach.job import Job

from .. import signals
from ..exceptions import NotRegistered


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
