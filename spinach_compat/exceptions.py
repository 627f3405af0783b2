"""Exceptions a Celery codebase imports, under the same names.

``SoftTimeLimitExceeded`` and ``TimeLimitExceeded`` are raised by the time limits of
``spinach_compat.app.timelimits``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = [
    "CeleryError",
    "ChordError",
    "Ignore",
    "ImproperlyConfigured",
    "MaxRetriesExceededError",
    "NotRegistered",
    "QueueNotFound",
    "Reject",
    "Retry",
    "SoftTimeLimitExceeded",
    "TaskError",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "TimeoutError",
    "UnsupportedFeature",
]


class CeleryError(Exception):
    """Base class of the facade's Celery-named errors."""


class TaskPredicate(CeleryError):
    """Raised by a task to tell the worker how to end it (retry, ignore, reject)."""


class Retry(TaskPredicate):
    """The task is to be retried: raised by ``Task.retry``.

    ``when`` is the countdown in seconds or the eta datetime of the retry.
    """

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | str | None = None,
        when: float | datetime | None = None,
        is_eager: bool = False,
        sig: Any = None,
        **kwargs: Any,
    ):
        self.message = message
        if isinstance(exc, str):
            self.exc, self.excs = None, exc
        else:
            self.exc, self.excs = exc, repr(exc) if exc is not None else None
        self.when = when
        self.is_eager = is_eager
        self.sig = sig
        super().__init__(message, exc, when)

    def humanize(self) -> str:
        if isinstance(self.when, (int, float)):
            return f"in {self.when}s"
        return f"at {self.when}"

    def __str__(self) -> str:
        if self.message:
            return self.message
        if self.excs:
            return f"Retry {self.humanize()}: {self.excs}"
        return f"Retry {self.humanize()}"

    def __reduce__(self) -> tuple:
        return self.__class__, (self.message, self.exc, self.when)


RetryTaskError = Retry


class Ignore(TaskPredicate):
    """The task is to be ignored: no state is stored for it."""


class Reject(TaskPredicate):
    """The task is rejected; ``requeue=True`` runs it again."""

    def __init__(self, reason: Any = None, requeue: bool = False):
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)

    def __repr__(self) -> str:
        return f"reject requeue={self.requeue}: {self.reason}"


class ImproperlyConfigured(CeleryError, ValueError):
    """The app's configuration is wrong or asks for what the facade cannot do."""


class UnsupportedFeature(CeleryError, NotImplementedError):
    """A Celery feature the facade does not support yet; the message names it."""


class NotRegistered(CeleryError, KeyError):
    """No task of that name is registered with the app."""

    def __repr__(self) -> str:
        return f"Task of kind {self.args[0]!r} never registered, please make sure it's imported."

    __str__ = __repr__


class ChordError(CeleryError):
    """A task of a chord's header failed: the body does not run."""


class TaskError(CeleryError):
    """A task-related error."""


class QueueNotFound(CeleryError, KeyError):
    """Task routed to a queue that is not declared."""


class MaxRetriesExceededError(TaskPredicate):
    """``Task.retry`` was called past ``max_retries`` without ``exc``."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.task_args = kwargs.pop("task_args", [])
        self.task_kwargs = kwargs.pop("task_kwargs", {})
        super().__init__(*args, **kwargs)


class TaskRevokedError(CeleryError):
    """The task was revoked (or expired) and never ran to completion."""


class TimeoutError(CeleryError):
    """``AsyncResult.get`` waited longer than its ``timeout``."""


class SoftTimeLimitExceeded(Exception):
    """Raised inside a task that ran past its soft time limit; it may catch it to clean up."""

    def __str__(self) -> str:
        return "SoftTimeLimitExceeded" + (f"{self.args!r}" if self.args else "()")


class TimeLimitExceeded(Exception):
    """A task ran past its hard time limit: the run failed (args: the limit, seconds)."""


class WorkerLostError(Exception):
    """The worker running the task died."""
