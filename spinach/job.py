"""Jobs: one execution of a task with its arguments (``job_codec`` says how they travel)."""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any


def _not_dispatched(*args: Any, **kwargs: Any) -> Any:
    """A job's function until the arbiter gives it its task's."""
    raise RuntimeError("this job was not dispatched: its task function is not set")


class JobStatus(enum.Enum):
    """Where a job is in its life."""

    NOT_SET = 0
    WAITING = 1  #: due in the future (scheduled later or waiting for a retry)
    QUEUED = 2  #: in its queue, waiting for a worker
    RUNNING = 3  #: fetched by a worker
    SUCCEEDED = 4
    FAILED = 5


def to_timestamp(at: datetime) -> float:
    """Seconds since the epoch of ``at``; a naive datetime is taken as UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.timestamp()


def to_datetime(timestamp: float) -> datetime:
    """The aware UTC datetime of a timestamp."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


#: The bits a version-4 (random) UUID has set, and the ones it has cleared, as in RFC 4122.
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)
_UUID4_CLEARED = ~((0xF000 << 64) | (0xC000 << 48))


def new_job_id() -> str:
    """A random, unique job id: the hex of a version-4 UUID, as ``uuid.uuid4().hex`` but
    without building a ``UUID`` (batches build thousands)."""
    value = int.from_bytes(os.urandom(16), "big") & _UUID4_CLEARED | _UUID4_SET
    return f"{value:032x}"


class Job:
    """One execution of a task: what to run, when, where, and how many times to try.

    ``at`` is an aware UTC datetime (a naive one is taken as UTC) or a timestamp.
    ``meta`` carries extra data for extensions (the Celery facade keeps its headers there);
    it must be JSON serializable like the arguments.
    """

    __slots__ = (
        "at_timestamp",
        "attempt",
        "id",
        "max_concurrency",
        "max_retries",
        "meta",
        "partition_key",
        "queue",
        "retries",
        "status",
        "task_args",
        "task_func",
        "task_kwargs",
        "task_name",
        "unique_key",
        "unique_ttl",
    )

    def __init__(
        self,
        task_name: str,
        queue: str,
        at: datetime | float,
        max_retries: int,
        task_args: tuple | list | None = None,
        task_kwargs: dict | None = None,
        *,
        id: str | None = None,
        retries: int = 0,
        max_concurrency: int | None = None,
        meta: dict | None = None,
        status: JobStatus = JobStatus.NOT_SET,
    ):
        self.id = id or new_job_id()
        self.task_name = task_name
        self.queue = queue
        self.at_timestamp = at if isinstance(at, (int, float)) else to_timestamp(at)
        self.max_retries = max_retries
        self.retries = retries
        self.max_concurrency = max_concurrency
        self.task_args = tuple(task_args) if task_args else ()
        self.task_kwargs = task_kwargs or {}
        self.meta = meta or {}
        self.status = status
        self.task_func: Callable[..., Any] = _not_dispatched  # set by the arbiter
        #: The id of the fetch that started this attempt (set by the broker, not stored):
        #: the reports of an attempt touch that attempt only.
        self.attempt: str | None = None
        #: The unique key of a job of a unique task, and the seconds it holds it at most
        #: (None: while it lives); set when the job is built, not stored in its payload.
        self.unique_key: str | None = None
        self.unique_ttl: float | None = None
        #: What a partitioned Redis namespace routes the job by (``spinach.routing``); not
        #: stored in its payload. None: spread by its id.
        self.partition_key: str | None = None

    @property
    def at(self) -> datetime:
        """When the job is due, as an aware UTC datetime."""
        return to_datetime(self.at_timestamp)

    @property
    def should_retry(self) -> bool:
        """Whether a failure of this attempt leads to another one."""
        return self.retries < self.max_retries

    def to_dict(self) -> dict[str, Any]:
        """The job's persistent fields, as they travel in a payload (see ``job_codec``)."""
        return job_codec.to_dict(self)

    def serialize(self) -> str:
        """The job as a JSON payload; an argument JSON cannot carry raises a TypeError."""
        return job_codec.encode(self)

    @classmethod
    def deserialize(cls, payload: str | bytes) -> Job:
        """Rebuild a job from its payload, or raise ``InvalidPayloadError`` saying why not."""
        return job_codec.decode(payload)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """Rebuild a job from its persistent fields, checking each one."""
        return job_codec.from_dict(data)

    def __repr__(self) -> str:
        return f"<Job {self.task_name} {self.id} {self.status.name}>"

    def __str__(self) -> str:
        return f"job {self.id} of task '{self.task_name}'"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Job):
            return NotImplemented
        return self.to_dict() == other.to_dict() and self.status == other.status

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable


from . import job_codec  # noqa: E402  (the codec builds Jobs: imported once Job exists)
