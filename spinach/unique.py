"""Unique jobs: a task declared ``unique=True`` (or with a ``unique_key`` function) has at
most one job per key stored at a time (queued, due later or running). Scheduling another
job of the same key returns the stored job instead of adding one; the key is released when
that job ends in any way (success, final failure, dead letter, failure on recovery from a
dead worker), or after ``unique_ttl`` seconds if given. The broker checks and takes the
key in the same atomic step that stores the job.

The key is the task name then either what ``unique_key(*args, **kwargs)`` returns or, with
``unique=True``, a hash of the arguments as canonical JSON (sorted keys): two calls with
equal arguments, keyword order aside, have the same key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any


def check_unique(task_name: str, unique: object) -> None:
    if not isinstance(unique, bool):
        raise ValueError(f"unique of task '{task_name}' must be True or False, not {unique!r}")


def check_unique_key(task_name: str, unique_key: object) -> None:
    if unique_key is not None and not callable(unique_key):
        raise ValueError(
            f"unique_key of task '{task_name}' must be None or a function of the job's "
            f"arguments returning a string, not {unique_key!r}"
        )


def check_unique_ttl(task_name: str, ttl: object) -> None:
    if ttl is None:
        return
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(
            f"unique_ttl of task '{task_name}' must be None or a positive number of seconds "
            f"or timedelta, not {ttl!r}"
        )


def ttl_seconds(ttl: float | timedelta | None) -> float | None:
    """A checked ``unique_ttl`` in seconds."""
    return ttl.total_seconds() if isinstance(ttl, timedelta) else ttl


def unique_key_of(
    task_name: str,
    unique: bool,
    unique_key: Callable[..., Any] | None,
    args: tuple | list,
    kwargs: dict | None,
) -> str | None:
    """The unique key of a job of the task with these arguments; None for a task that is
    not unique. Raises ``ValueError`` naming the task when the key cannot be made."""
    kwargs = kwargs or {}
    if unique_key is not None:
        try:
            key = unique_key(*args, **kwargs)
        except Exception as exc:
            raise ValueError(
                f"unique_key of task '{task_name}' raised {exc!r} for the arguments "
                f"{tuple(args)!r}, {kwargs!r}: nothing was scheduled"
            ) from exc
        if not isinstance(key, str) or not key:
            raise ValueError(
                f"unique_key of task '{task_name}' must return a non-empty string, not "
                f"{key!r} (arguments {tuple(args)!r}, {kwargs!r}): nothing was scheduled"
            )
        return f"{task_name}:{key}"
    if not unique:
        return None
    try:
        canonical = json.dumps([list(args), kwargs], sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"the arguments of unique task '{task_name}' have no JSON form to make its "
            f"unique key from ({exc}): nothing was scheduled"
        ) from None
    return f"{task_name}:{hashlib.sha256(canonical.encode()).hexdigest()}"
