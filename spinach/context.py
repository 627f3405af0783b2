"""What a running task can learn about itself."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .job import Job

_current_job: ContextVar[Job | None] = ContextVar("spinach_current_job", default=None)


def current_job() -> Job | None:
    """The job being run by the calling task, None outside a worker.

    It works in thread workers and in coroutines run by ``AsyncioWorkers`` alike.
    """
    return _current_job.get()
