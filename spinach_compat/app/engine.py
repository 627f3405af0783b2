"""The native engine as the facade runs it: one hook for Celery's ``task_unknown``."""

from __future__ import annotations

from spinach import Engine
from spinach.job import Job

from .. import signals
from ..exceptions import NotRegistered


class CompatEngine(Engine):
    """``Engine`` sending ``task_unknown`` when a fetched job names no registered task.

    The job is then dead-lettered by the engine, as before (see ``spinach dead-letters``).
    It overrides the engine's private ``_dead_letter``: a public hook in the engine (a
    ``job_dead_lettered`` signal) would let this go.
    """

    def _dead_letter(self, job: Job, reason: str) -> None:
        signals.task_unknown.send(
            sender=None, message=job.to_dict(), exc=NotRegistered(job.task_name),
            name=job.task_name, id=job.id,
        )  # fmt: skip
        super()._dead_letter(job, reason)
