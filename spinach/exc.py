"""Every error Spinach raises on purpose, under one base class."""

from datetime import datetime


class SpinachError(Exception):
    """Base class of the errors raised by Spinach."""


class UnknownTask(SpinachError, KeyError):
    """No task of that name is registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown task"


class InvalidJobSignatureError(SpinachError, TypeError):
    """The arguments of a job do not fit its task's function signature."""


class UnserializableArgumentError(SpinachError, TypeError):
    """An argument of a job cannot be carried by the serializer (JSON)."""


class InvalidPayloadError(SpinachError, ValueError):
    """A payload read from a broker is not a valid job."""


class WorkerLostError(SpinachError):
    """The worker process running a job died before reporting its outcome."""


class BrokerError(SpinachError):
    """The broker failed to carry out an operation."""


class RetryException(SpinachError):
    """Raised by a task to ask for its job to be retried.

    The task's ``max_retries`` still applies: past it the job fails. ``at`` picks the time of
    the retry (a naive datetime is UTC); without it the usual backoff applies.
    """

    def __init__(self, message: str, at: datetime | None = None):
        if at is not None and not isinstance(at, datetime):
            raise TypeError(f"RetryException(at=...) takes a datetime, not {type(at).__name__}")
        super().__init__(message)
        self.at = at


class DeferException(SpinachError):
    """Raised by a task to run its job again at ``at`` without counting an attempt.

    For a job that cannot run yet (a rate limit reached, a resource not ready): unlike
    ``RetryException``, ``max_retries`` does not apply and the job's ``retries`` stays as
    it is. A naive ``at`` is UTC.
    """

    def __init__(self, message: str, at: datetime):
        if not isinstance(at, datetime):
            raise TypeError(f"DeferException(at=...) takes a datetime, not {type(at).__name__}")
        super().__init__(message)
        self.at = at


class AbortException(SpinachError):
    """Raised by a task to make its job fail at once, without any retry."""
