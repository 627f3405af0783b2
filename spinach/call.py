"""Per-call options: how one job of a task is scheduled, apart from its arguments, so they
never collide with the task's own keyword arguments::

    spin.schedule(options(send_email, queue="urgent", priority=0, countdown=30), to, subject)

``options(task, ...)`` wraps a task reference (its name, its function or the ``Task``);
the engine's ``schedule``, ``schedule_at`` and ``Batch`` take it wherever they take a task.
What it leaves out (None) is the task's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .priority import check_priority
from .routing import check_partition_key

if TYPE_CHECKING:
    from .task import TaskRef


@dataclass(frozen=True)
class Call:
    """A task reference with options for the jobs scheduled through it."""

    task: TaskRef
    queue: str | None = None
    priority: int | None = None
    max_retries: int | None = None
    countdown: float | None = None  #: seconds from now the job is due at
    eta: datetime | None = None  #: when the job is due (a naive datetime is UTC)
    #: Routes the job in a partitioned Redis namespace (``spinach.routing``).
    partition_key: str | None = None

    def __post_init__(self) -> None:
        name = getattr(self.task, "name", None) or getattr(self.task, "__name__", self.task)
        check_priority(str(name), self.priority)
        check_partition_key(str(name), self.partition_key)
        if self.countdown is not None and self.eta is not None:
            raise ValueError(f"options of task '{name}': give countdown or eta, not both")
        if self.countdown is not None and (
            isinstance(self.countdown, bool) or not isinstance(self.countdown, (int, float))
        ):
            raise ValueError(f"countdown of task '{name}' must be seconds, not {self.countdown!r}")
        if self.eta is not None and not isinstance(self.eta, datetime):
            raise ValueError(f"eta of task '{name}' must be a datetime, not {self.eta!r}")

    def due(self, now: float) -> datetime | None:
        """When a job scheduled at ``now`` (a timestamp) is due; None: as soon as possible."""
        if self.countdown is not None:
            return datetime.fromtimestamp(now, tz=timezone.utc) + timedelta(seconds=self.countdown)
        return self.eta

    def overrides(self) -> dict[str, Any]:
        """The job options set for this call."""
        given = {"queue": self.queue, "priority": self.priority, "max_retries": self.max_retries,
                 "partition_key": self.partition_key}  # fmt: skip
        return {name: value for name, value in given.items() if value is not None}


def options(task: TaskRef, **kwargs: Any) -> Call:
    """``task`` with options for one call: ``queue``, ``priority`` (0 first to 9 last),
    ``max_retries``, ``countdown`` (seconds) or ``eta`` (a datetime), ``partition_key``
    (jobs with one key stay in order on one partition of a partitioned Redis namespace)."""
    return Call(task, **kwargs)
