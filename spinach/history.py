"""The history of finished jobs: one record per job that ended (succeeded or failed for
good), kept by the broker for a bounded time and number (``HistorySettings``), so that the
dashboard, or any tool, shows what ran, how it ended and what it logged, across restarts.

A worker notes each attempt as it ends (``HistoryRecorder.attempt_ended``, called by the
worker pool) and the result notifier hands the records of the jobs it reports as ended to
``Broker.record_history``, through the same outage-proof calls as the reports themselves.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from math import isfinite
from typing import Any

from .job import Job, JobStatus
from .job_codec import COMPACT_JSON
from .job_logs import JobLogCapture

#: Characters of a job's arguments kept in its record (and shown by the dashboard): more
#: shows more of large arguments, at the cost of Redis memory per record.
ARGS_PREVIEW_CHARS = 500
#: Encodes the arguments' preview (what JSON cannot carry shown as its ``repr``).
_PREVIEW_JSON = json.JSONEncoder(default=repr)

#: Characters of an error message kept in a record: enough for a traceback's last line.
ERROR_CHARS = 2000

#: Minutes of finished-job counts a broker keeps per queue (``Broker.finished_counts``):
#: the dashboard's rates look this far back; more costs a few hash fields per queue.
FINISHED_COUNT_MINUTES = 15


def counts_by_queue(counts: dict[str, int], now: float, minutes: int) -> dict[str, list[int]]:
    """``{"<minute> <queue>": count}`` as ``{queue: [count per minute]}`` over the last
    ``minutes`` minutes, oldest first; queues without any count in them left out."""
    current = int(now // 60)
    by_queue: dict[str, list[int]] = {}
    for key, count in counts.items():
        minute_text, _, queue = key.partition(" ")
        age = current - int(minute_text)
        if 0 <= age < minutes:
            by_queue.setdefault(queue, [0] * minutes)[minutes - 1 - age] += count
    return by_queue


@dataclass(frozen=True)
class HistorySettings:
    """How much history a worker keeps (``Engine.history``): each field says its trade-off."""

    #: Whether finished jobs are recorded at all: off saves a broker call per reported batch.
    enabled: bool = True
    #: Seconds a record is kept: longer shows more of the past, at the cost of memory.
    retention: float = 24 * 3600.0
    #: Most records kept per namespace, newest first: bounds memory under a heavy load.
    max_records: int = 10_000
    #: Most records a worker holds before writing them in one round trip: fewer round trips
    #: under load, or fewer records lost if the worker process dies.
    write_batch: int = 500
    #: Seconds the first record held waits for others before they are written together
    #: (0: each batch of reports is written at once): fewer round trips and less Redis work
    #: per job, or the history showing a finished job that much later.
    write_delay: float = 0.1
    #: Whether the log records a job writes while it runs are kept in its record: off saves
    #: a logging handler's work on every record and the memory of the lines.
    capture_logs: bool = True
    #: Most log lines kept per job: the first ones, then a note that the rest were dropped.
    log_lines: int = 200
    #: Most bytes of log lines kept per job, whatever their number.
    log_bytes: int = 16 * 1024


@dataclass(slots=True)  # slots: one container fewer per finished job, held until written
class HistoryRecord:
    """A finished job as the history keeps it."""

    id: str
    task: str
    queue: str
    status: str  #: "succeeded" or "failed"
    attempts: int
    scheduled_at: float
    started_at: float
    finished_at: float
    duration: float  #: seconds the last attempt ran
    args: str  #: a preview of the arguments, as JSON cut to ``ARGS_PREVIEW_CHARS``
    error: str | None = None  #: ``Type: message`` of the last failure
    logs: list[str] = field(default_factory=list)
    logs_truncated: bool = False

    def to_json(self) -> str:
        """The record as compact JSON, its fields in their order (what the brokers keep)."""
        text = _plain_json(self)
        if text is None:  # a field of another type: the generic encoder, same text
            # Not dataclasses.asdict: its deep copy made this a tenth of a worker's CPU.
            fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
            text = COMPACT_JSON.encode(fields)
        return text

    @classmethod
    def from_json(cls, text: str | bytes) -> HistoryRecord:
        data: dict[str, Any] = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _plain_json(r: HistoryRecord) -> str | None:
    """``r`` as ``COMPACT_JSON`` encodes its fields, spelled out: the encoder's generic walk
    (a dict built, each value's type looked up, the circular-reference check) was most of a
    record's cost, written per finished job. None if a field is not of its usual type (the
    encoder then writes it): ``_quote`` and ``float.__repr__`` raise ``TypeError`` on one."""
    quote, floats = _quote, (r.scheduled_at, r.started_at, r.finished_at, r.duration)
    if type(r.attempts) is not int or type(r.logs) is not list:
        return None  # a bool is an int JSON spells otherwise
    if r.logs_truncated is not True and r.logs_truncated is not False:
        return None
    try:
        if not isfinite(sum(floats)):  # JSON spells inf and nan otherwise
            return None
        scheduled, started, finished, duration = map(float.__repr__, floats)
        return (
            f'{{"id":{quote(r.id)},"task":{quote(r.task)},"queue":{quote(r.queue)},'
            f'"status":{quote(r.status)},"attempts":{r.attempts},"scheduled_at":{scheduled},'
            f'"started_at":{started},"finished_at":{finished},"duration":{duration},'
            f'"args":{quote(r.args)},"error":{"null" if r.error is None else quote(r.error)},'
            f'"logs":[{",".join(map(quote, r.logs))}],'
            f'"logs_truncated":{"true" if r.logs_truncated else "false"}}}'
        )
    except TypeError:
        return None


#: Encodes a text as JSON, as the encoder does (C; ``TypeError`` if it is not a ``str``).
_quote = encode_basestring_ascii


#: Keys of a job's meta (or of its ``headers``, which win) holding a text shown in place of
#: its arguments: the Celery facade's ``apply_async(argsrepr=..., kwargsrepr=...)``, which
#: hides sensitive arguments from every view of the job.
REPR_KEYS = ("argsrepr", "kwargsrepr")


def args_preview(job: Job, limit: int = ARGS_PREVIEW_CHARS) -> str:
    """The arguments of ``job`` as JSON (``[args, kwargs]``), cut to ``limit`` characters;
    each part the job's meta gives a text for (``REPR_KEYS``) is that text instead."""
    args_text, kwargs_text = given_reprs(job.meta)
    if args_text is None is kwargs_text and not job.task_args and not job.task_kwargs:
        text = _NO_ARGS  # the common case, written per finished job: not encoded each time
        return text if len(text) <= limit else text[: limit - 3] + "..."
    args = args_text if isinstance(args_text, str) else list(job.task_args)
    kwargs = kwargs_text if isinstance(kwargs_text, str) else job.task_kwargs
    try:
        text = _PREVIEW_JSON.encode([args, kwargs])
    except (TypeError, ValueError) as exc:
        text = f"<arguments not JSON: {exc}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: The preview of a job without arguments.
_NO_ARGS = _PREVIEW_JSON.encode([[], {}])


def given_reprs(meta: dict | None) -> tuple[Any, Any]:
    """The values ``meta`` gives for ``REPR_KEYS`` (its ``headers``' first), None for those
    it does not give; not checked: each reader decides what it shows of a value that is
    not a text."""
    if not isinstance(meta, dict) or not meta:
        return None, None
    args, kwargs = meta.get(REPR_KEYS[0]), meta.get(REPR_KEYS[1])
    headers = meta.get("headers")
    if isinstance(headers, dict):
        args, kwargs = headers.get(REPR_KEYS[0], args), headers.get(REPR_KEYS[1], kwargs)
    return args, kwargs


#: The statuses of a job that ended (a record is kept), not retried.
_ENDED = (JobStatus.SUCCEEDED, JobStatus.FAILED)


@dataclass(slots=True)
class _Attempt:
    started_at: float
    finished_at: float = 0.0
    duration: float = 0.0
    error: str | None = None


class HistoryRecorder:
    """What a worker process notes about the attempts of its jobs until they are reported.

    Thread-safe: worker threads note attempts, the result notifier takes the records.
    """

    def __init__(self, settings: HistorySettings, clock: Any = time.time):
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._attempts: dict[str, _Attempt] = {}
        self.logs: JobLogCapture | None = (
            JobLogCapture(settings.log_lines, settings.log_bytes, self._attempts.__contains__)
            if settings.capture_logs
            else None
        )

    def attempt_started(self, job: Job) -> None:
        with self._lock:
            self._attempts[job.id] = _Attempt(started_at=self._clock())

    def attempt_ended(self, job: Job, duration: float, err: BaseException | None) -> None:
        error = None if err is None else f"{type(err).__name__}: {err}"[:ERROR_CHARS]
        with self._lock:
            attempt = self._attempts.get(job.id)
            if attempt is not None:
                attempt.finished_at, attempt.duration, attempt.error = (
                    self._clock(),
                    duration,
                    error,
                )

    def take(self, jobs: Sequence[Job]) -> list[HistoryRecord]:
        """The records of ``jobs`` that ended (the others are forgotten: a retry)."""
        with self._lock:  # once for the batch: taken per reported batch, not per job
            attempts = [self._attempts.pop(job.id, None) for job in jobs]
        records, logs = [], self.logs
        for job, attempt in zip(jobs, attempts, strict=True):
            lines, truncated = logs.pop(job.id) if logs else ([], False)
            if attempt is None or job.status not in _ENDED:
                continue
            records.append(self._record(job, attempt, lines, truncated))
        return records

    @staticmethod
    def _record(job: Job, attempt: _Attempt, lines: list[str], truncated: bool) -> HistoryRecord:
        return HistoryRecord(
            id=job.id, task=job.task_name, queue=job.queue,
            status="succeeded" if job.status is JobStatus.SUCCEEDED else "failed",
            attempts=job.retries + 1, scheduled_at=job.at_timestamp,
            started_at=attempt.started_at, finished_at=attempt.finished_at or attempt.started_at,
            duration=attempt.duration, args=args_preview(job), error=attempt.error,
            logs=lines, logs_truncated=truncated,
        )  # fmt: skip
