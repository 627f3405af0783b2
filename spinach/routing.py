"""Routing keys: which partition of a partitioned Redis namespace a job goes to.

A namespace spread over partitions (``RedisBroker(..., partitions=N)``) puts jobs with one
routing key on one partition, in order; jobs without one are spread by their id. The key
of a job, first that applies:

1. the task name, for a task with ``max_concurrency`` or ``rate_limit``: its counters live
   on that one partition, so the limit holds across the namespace (its jobs do not spread);
2. the unique key of a unique job: its lock lives there, so uniqueness is global;
3. its ``partition_key``: per call (``spinach.options(task, partition_key=...)``) or the
   task's own; related jobs keep their order.

Other brokers ignore it. ``Task.new_job`` stores the key in ``Job.partition_key``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .job import Job


def check_partition_key(task_name: str, partition_key: object) -> None:
    """Raise ``ValueError`` naming the task unless ``partition_key`` is None or a string."""
    if partition_key is not None and (not isinstance(partition_key, str) or not partition_key):
        raise ValueError(
            f"partition_key of task '{task_name}' must be None or a non-empty string, "
            f"not {partition_key!r}"
        )


def routing_key(job: Job, limited: bool) -> str | None:
    """The routing key of ``job`` (see the module's docstring), None for none; ``limited``:
    its task has a ``rate_limit`` (jobs carry ``max_concurrency`` but not the rate)."""
    if limited or job.max_concurrency is not None:
        return job.task_name
    if job.unique_key:
        return job.unique_key
    return job.partition_key
