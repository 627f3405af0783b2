"""Unique jobs for Celery tasks, which Celery has not: the task options
``spinach_unique=True``, ``spinach_unique_key=`` (a function of the call's arguments
returning a string) and ``spinach_unique_ttl=`` (seconds) have the meaning of the native
``unique``, ``unique_key`` and ``unique_ttl`` (``spinach.unique``): while a job of the
same key is queued, due later or running, sending another returns that job's
``AsyncResult`` instead of adding one. The key is made from the arguments as given to
``delay``/``apply_async``, before they are serialized.
"""

from __future__ import annotations

from typing import Any

from spinach.job import Job
from spinach.unique import (
    check_unique,
    check_unique_key,
    check_unique_ttl,
    ttl_seconds,
    unique_key_of,
)

#: The task options (not settings) of unique jobs.
OPTIONS = ("spinach_unique", "spinach_unique_key", "spinach_unique_ttl")


def mark_unique(job: Job, task: Any, name: str, args: list, kwargs: dict) -> None:
    """Give ``job`` its unique key when its Celery task asks for one; a bad option or key
    raises ``ValueError`` naming the task (nothing is sent)."""
    unique = getattr(task, "spinach_unique", False)
    key = getattr(task, "spinach_unique_key", None)
    if task is None or (unique is False and key is None):
        return
    if getattr(key, "__self__", None) is task:  # a function among the class's attributes
        key = key.__func__  # type: ignore[union-attr]
    ttl = getattr(task, "spinach_unique_ttl", None)
    for check, value in ((check_unique, unique), (check_unique_key, key), (check_unique_ttl, ttl)):
        check(name, value)
    job.unique_key = unique_key_of(name, unique, key, args, kwargs)
    job.unique_ttl = ttl_seconds(ttl)
