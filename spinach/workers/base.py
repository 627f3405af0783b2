"""What every worker pool shares: the job life cycle around a task call."""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import timedelta

from .. import const, signals
from ..context import _current_job
from ..exc import AbortException, DeferException, RetryException
from ..history import HistoryRecorder
from ..job import Job, JobStatus, to_timestamp
from ..retries import exponential_backoff
from .prefetch import Prefetch

logger = logging.getLogger("spinach.worker")

Backoff = Callable[[int], float]


class Workers(ABC):
    """A pool running jobs handed by the arbiter and handing them back once done.

    ``out_queue`` receives each job after its attempt, with its status advanced
    (SUCCEEDED, FAILED, or WAITING/QUEUED for a retry); ``on_job_done`` is called then, so
    the arbiter can fetch more.

    A pool that queues jobs for its threads (``holds_jobs``) may be given a ``prefetch``
    (``spinach.workers.prefetch``): it then takes a few jobs more than it has threads while
    its jobs are short.
    """

    #: Whether submitted jobs wait in the pool for a free worker (threads), rather than all
    #: starting at once (greenlets, asyncio tasks): only such a pool can prefetch.
    holds_jobs = False

    def __init__(
        self,
        number: int,
        namespace: str,
        *,
        clock: Callable[[], float] = time.time,
        on_job_done: Callable[[], None] = lambda: None,
        backoff: Backoff = exponential_backoff,
    ):
        if not isinstance(number, int) or number < 1:
            raise ValueError(f"the number of workers must be an int >= 1, not {number!r}")
        self.number = number
        self.namespace = namespace
        self.out_queue: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._clock = clock
        self._on_job_done = on_job_done
        self._backoff = backoff
        self._slots_lock = threading.Lock()
        self._in_flight = 0  # jobs submitted and not yet ended
        #: Notes each attempt for the history of finished jobs (set by the worker process).
        self.history: HistoryRecorder | None = None
        #: Jobs held beyond the threads while jobs are short (set by the worker process).
        self.prefetch: Prefetch | None = None

    @property
    def available_slots(self) -> int:
        """How many more jobs the pool can take now (prefetched ones included)."""
        extra = self.prefetch.extra if self.prefetch is not None else 0
        return self.number + extra - self._in_flight

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not ended yet (held ones included)."""
        return self._in_flight

    def slots_to_fetch(self) -> int:
        """Jobs worth fetching now: every free slot while a thread is free; with every
        thread busy, none until the held jobs ran low (``Prefetch.refill_at``).

        Called per job ended: ``_in_flight`` is read once and without the lock (one int
        read is atomic; the lock makes its updates so), the prefetch's state once."""
        in_flight = self._in_flight
        if in_flight < self.number:
            extra = self.prefetch.extra if self.prefetch is not None else 0
            return self.number + extra - in_flight
        extra, refill_at = self.prefetch.room() if self.prefetch is not None else (0, 1)
        free = self.number + extra - in_flight
        return free if free >= refill_at else 0

    def submit_job(self, job: Job) -> None:
        """Run ``job`` (its ``task_func`` set) as soon as a worker is free."""
        self._count_in_flight(1)
        self._start_job(job)

    def submit_jobs(self, jobs: list[Job]) -> None:
        """``submit_job`` each of ``jobs``, counted in flight once for all (a fetch's)."""
        self._count_in_flight(len(jobs))
        for job in jobs:
            self._start_job(job)

    def _count_in_flight(self, delta: int) -> None:
        with self._slots_lock:
            self._in_flight += delta

    def held_jobs(self) -> list[Job]:
        """The jobs handed to the pool that no worker started yet (prefetched ones)."""
        return []

    @abstractmethod
    def _start_job(self, job: Job) -> None:
        """Hand a submitted job to a worker."""

    @abstractmethod
    def stop(self) -> list[Job]:
        """Let running jobs finish, stop every worker, return the jobs never started."""

    def _job_starting(self, job: Job) -> float:
        job.status = JobStatus.RUNNING
        logger.info("Starting %s, attempt %d", job, job.retries + 1)
        if self.history is not None:
            self.history.attempt_started(job)
        signals.job_started.send(self.namespace, job=job)
        return time.perf_counter()

    def _run_job(self, job: Job) -> None:
        """Run ``job`` in this thread (or greenlet) from start to report."""
        started = self._job_starting(job)
        err = None
        token = _current_job.set(job)
        try:
            result = job.task_func(*job.task_args, **job.task_kwargs)
            if inspect.iscoroutine(result):  # a coroutine task: on a loop of its own
                asyncio.run(result)
        except BaseException as exc:  # a task's failure is the job's, never the pool's
            err = exc
        finally:
            _current_job.reset(token)
        self._count_in_flight(-1)
        self._job_ended(job, started, err)

    def _job_ended(self, job: Job, started: float, err: BaseException | None) -> None:
        duration = time.perf_counter() - started
        try:
            advance_job_status(self.namespace, job, duration, err, self._clock(), self._backoff)
        except Exception:  # a bug here must not strand the job as running forever
            logger.critical("Could not advance the status of %s: failing it", job, exc_info=True)
            job.status = JobStatus.FAILED
        if self.history is not None:
            self.history.attempt_ended(job, duration, err)
        if self.prefetch is not None:
            self.prefetch.observe(duration)
        signals.job_finished.send(self.namespace, job=job)
        self.out_queue.put(job)
        self._on_job_done()


def advance_job_status(
    namespace: str,
    job: Job,
    duration: float,
    err: BaseException | None,
    now: float,
    backoff: Backoff = exponential_backoff,
) -> None:
    """Set the status of ``job`` after an attempt that took ``duration`` seconds.

    Success ends the job; ``DeferException`` puts it back for later without counting an
    attempt; ``AbortException`` fails it at once; any other error retries it while it has
    retries left (``RetryException`` may choose when), and fails it after.

    An error whose ``reported`` attribute is true was logged already by the code raising it
    (the Celery facade logs a task's failure as Celery does): its failure gets one INFO
    line here, without the traceback.
    """
    took = _Duration(duration)
    if err is None:
        job.status = JobStatus.SUCCEEDED
        logger.info("Finished %s in %s: succeeded", job, took)
    elif isinstance(err, DeferException):
        _defer(job, err, now, took)
    elif job.should_retry and not isinstance(err, AbortException):
        _schedule_retry(namespace, job, err, now, backoff, took)
    else:
        job.status = JobStatus.FAILED
        _log_failure(job, err, took)
        signals.job_failed.send(namespace, job=job, err=err)


def _log_failure(job: Job, err: BaseException, took: object) -> None:
    if getattr(err, "reported", False):  # its traceback is in the log already
        logger.info("Finished %s in %s: failed, as logged above", job, took)
        return
    why = "aborted" if isinstance(err, AbortException) else "failed"
    logger.error(
        "Finished %s in %s: %s after %d attempt(s): %s",
        job, took, why, job.retries + 1, _describe(err), exc_info=err,
    )  # fmt: skip


def _schedule_retry(
    namespace: str, job: Job, err: BaseException, now: float, backoff: Backoff, took: object
) -> None:
    job.retries += 1
    at = getattr(err, "at", None) if isinstance(err, RetryException) else None
    job.at_timestamp = to_timestamp(at) if at is not None else now + backoff(job.retries)
    job.status = JobStatus.WAITING if job.at_timestamp > now else JobStatus.QUEUED
    delay = timedelta(seconds=round(max(job.at_timestamp - now, 0), 3))
    of_total = "" if job.max_retries >= const.UNLIMITED_RETRIES else f" of {job.max_retries}"
    logger.warning(
        "Finished %s in %s: failed with %s; retry %d%s in %s",
        job, took, _describe(err), job.retries, of_total, delay,
        exc_info=None if isinstance(err, RetryException) else err,  # asked for: no traceback
    )  # fmt: skip
    signals.job_schedule_retry.send(namespace, job=job, err=err)


def _defer(job: Job, err: DeferException, now: float, took: object) -> None:
    job.at_timestamp = to_timestamp(err.at)
    job.status = JobStatus.WAITING if job.at_timestamp > now else JobStatus.QUEUED
    delay = timedelta(seconds=round(max(job.at_timestamp - now, 0), 3))
    logger.info("Finished %s in %s: deferred by %s for %s", job, took, err, delay)


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


class _Duration:
    """A duration formatted for the logs only if a log line is written."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __str__(self) -> str:
        seconds = self.seconds
        return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
