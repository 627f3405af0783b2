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
        self.excs: str | None
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


class TaskError(CeleryError):
    """A task-related error."""


class NotRegistered(KeyError, TaskError):
    """No task of that name is registered with the app."""

    def __repr__(self) -> str:
        return f"Task of kind {self.args[0]!r} never registered, please make sure it's imported."

    __str__ = __repr__


class ChordError(TaskError):
    """A task of a chord's header failed: the body does not run."""


class QueueNotFound(KeyError, TaskError):
    """Task routed to a queue that is not declared."""


class MaxRetriesExceededError(TaskError):
    """``Task.retry`` was called past ``max_retries`` without ``exc``."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.task_args = kwargs.pop("task_args", [])
        self.task_kwargs = kwargs.pop("task_kwargs", {})
        super().__init__(*args, **kwargs)


class TaskRevokedError(TaskError):
    """The task was revoked (or expired) and never ran to completion."""


class TimeoutError(TaskError):
    """``AsyncResult.get`` waited longer than its ``timeout``."""


class SoftTimeLimitExceeded(Exception):
    """Raised inside a task that ran past its soft time limit; it may catch it to clean up."""

    def __str__(self) -> str:
        return "SoftTimeLimitExceeded" + (f"{self.args!r}" if self.args else "()")


class TimeLimitExceeded(Exception):
    """A task ran past its hard time limit: the run failed (args: the limit, seconds)."""


class WorkerLostError(Exception):
    """The worker running the task died."""


# -- the rest of celery.exceptions: warnings, backend and worker errors ------------------

from kombu.exceptions import OperationalError  # noqa: E402  (as Celery: kombu's)


def reraise(tp: type[BaseException], value: BaseException, tb: Any = None) -> None:
    """Raise ``value`` again, with the traceback ``tb``."""
    if value.__traceback__ is not tb:
        raise value.with_traceback(tb)
    raise value


class CeleryWarning(UserWarning):
    """Base class of Celery's warnings."""


class AlwaysEagerIgnored(CeleryWarning):
    """``send_task`` ignores ``task_always_eager``."""


class DuplicateNodenameWarning(CeleryWarning):
    """Two workers share a node name."""


class DuplicateTaskNameWarning(CeleryWarning):
    """Two tasks share a name."""


class FixupWarning(CeleryWarning):
    """A fixup (as Django's) could not be applied."""


class NotConfigured(CeleryWarning):
    """The app was used without configuration."""


class SecurityWarning(CeleryWarning):
    """A potential security issue."""


class SecurityError(CeleryError):
    """A message-signing error (the facade has no message signing: never raised)."""


class IncompleteStream(TaskError):
    """A task-related stream ended early."""


class AlreadyRegistered(TaskError):
    """A task of that name is already registered."""


class InvalidTaskError(TaskError):
    """A task message is malformed."""


class CPendingDeprecationWarning(PendingDeprecationWarning):
    """A Celery feature pending deprecation."""


class CDeprecationWarning(DeprecationWarning):
    """A deprecated Celery feature."""


class WorkerTerminate(SystemExit):
    """Raised to stop the worker at once."""


SystemTerminate = WorkerTerminate


class WorkerShutdown(SystemExit):
    """Raised to stop the worker warmly."""


class Terminated(Exception):
    """A task's process was terminated."""


class BackendError(Exception):
    """Reading or writing the result backend failed."""


class BackendGetMetaError(BackendError):
    """Reading a result failed (``task_id`` says whose)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args)
        self.task_id = kwargs.get("task_id", "")

    def __repr__(self) -> str:
        return super().__repr__() + " task_id:" + self.task_id


class BackendStoreError(BackendError):
    """Writing a result failed (``state`` and ``task_id`` say which)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args)
        self.state = kwargs.get("state", "")
        self.task_id = kwargs.get("task_id", "")

    def __repr__(self) -> str:
        return super().__repr__() + " state:" + self.state + " task_id:" + self.task_id


__all__ += [
    "AlreadyRegistered", "AlwaysEagerIgnored", "BackendError", "BackendGetMetaError",
    "BackendStoreError", "CDeprecationWarning", "CPendingDeprecationWarning", "CeleryWarning",
    "DuplicateNodenameWarning", "DuplicateTaskNameWarning", "FixupWarning", "IncompleteStream",
    "InvalidTaskError", "NotConfigured", "OperationalError", "SecurityError", "SecurityWarning",
    "TaskPredicate", "Terminated", "WorkerLostError", "WorkerShutdown", "WorkerTerminate",
    "reraise",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    """Refuse the names of ``spinach_compat.surface.REFUSED`` (imported late: it imports us)."""
    if name.startswith("__"):  # asked by the import system, as __path__
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .surface import module_getattr

    return module_getattr(__name__)(name)
