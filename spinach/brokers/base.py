"""The contract between the engine and a place where jobs wait: a broker.

Delivery guarantee
------------------
A broker never drops a job it accepted. A job moves, each step atomically::

    enqueue -> future set (due later) or queue (due now)
    fetch   -> running, under the id of the worker process that fetched it
    finish  -> gone (succeeded, or failed for good)
    retry   -> future set again, with one more retry counted

so at any moment every job is in exactly one place. When a worker process dies (it stops
heartbeating for ``dead_worker_threshold`` seconds), another process recovers its running
jobs: a job with retries left (``retries < max_retries``, at-least-once) goes back to its
queue, counting a retry; a job without (``max_retries == 0``, or its last allowed attempt:
at-most-once) is marked FAILED and never runs twice. At-least-once means a job can run
more than once (a worker that dies after running a job but before reporting it), so such
tasks should be idempotent.

Only the worker that holds a running job can end it (finish, retry, give back, dead-letter),
and only in the attempt it holds (``Job.attempt``, the fetch that started it): a worker
declared dead while it was only slow cannot disturb the second run of its job, on another
worker or on itself after fetching the job again; its late report is ignored.

A payload that cannot be decoded, or that names a task no worker knows, is never silently
dropped: it goes to the namespace's dead-letter store, from where it can be listed,
re-enqueued or purged.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from .. import const
from ..history import HistoryRecord
from ..job import Job
from ..task import Task

Clock = Callable[[], float]

logger = logging.getLogger("spinach.brokers")


@dataclass
class WorkerInfo:
    """A live worker process, as the broker knows it."""

    id: str
    hostname: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    queues: list[str] = field(default_factory=list)
    threads: int = 0
    started_at: float = 0.0
    last_heartbeat: float = 0.0

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "hostname": self.hostname,
            "pid": self.pid,
            "queues": list(self.queues),
            "threads": self.threads,
            "started_at": self.started_at,
            "last_heartbeat": self.last_heartbeat,
        }

    @classmethod
    def from_dict(cls, data: dict) -> WorkerInfo:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class DeadLetter:
    """A payload set aside because it could not be run, with why and when."""

    id: str  #: the job id when the payload has one, else a generated one
    queue: str
    payload: str
    reason: str
    failed_at: float

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "queue": self.queue,
            "payload": self.payload,
            "reason": self.reason,
            "failed_at": self.failed_at,
        }


class Unscoped(str):
    """A shared-state name stored under itself, outside the namespace: a key other programs
    read and write too (Celery's ``celery-task-meta-<id>``); ``Broker.key`` returns it as
    is. On Redis Cluster it has a slot of its own, so a read of it and of namespaced names
    is not taken at one moment."""

    __slots__ = ()


class Watch(ABC):
    """The values published (``Broker.publish_value``) under the names of one ``watch``."""

    @abstractmethod
    def next(self, timeout: float) -> tuple[str, bytes] | None:
        """The name and value of the next value published under a watched name, in order
        of publication; None after ``timeout`` seconds without one."""


def normalize_queues(queue: str | Sequence[str]) -> list[str]:
    """One queue name or several as a list, in priority order, without duplicates."""
    queues = [queue] if isinstance(queue, str) else list(queue)
    if not queues:
        raise ValueError("at least one queue is needed")
    return list(dict.fromkeys(queues))


def log_kept_dead_letters(kept: Iterable[tuple[str, str, str]]) -> None:
    """Warn about dead letters a retry kept: ``(letter id, unique key, "<status>/<job id>"
    of the job holding the key)`` each."""
    for letter_id, key, holder in kept:
        status, _, holder_id = holder.partition("/")
        logger.warning(
            "Dead letter %s not retried: its unique key %r is held by job %s (%s); retry it "
            "once that job ends, or purge it",
            letter_id, key, holder_id, status.lower(),
        )  # fmt: skip


class Broker(ABC):
    """Where jobs wait, run and end, shared by every engine of a namespace.

    A broker instance belongs to one engine; its ``worker_id`` names that engine's worker
    process in the running-job bookkeeping. Two instances pointing at the same storage (two
    ``RedisBroker`` on one server, ``MemoryBroker.peer()``) behave as two worker processes.

    ``clock`` returns the current time as seconds since the epoch: inject one in tests to
    make delayed jobs, retries and dead workers due without sleeping. The liveness and
    polling tunables are read by the engine; their defaults and trade-offs are in
    ``spinach.const``.
    """

    #: Most jobs one ``get_jobs_from_queue`` returns, whatever it is asked (None: no cap).
    #: A fetch returning that many may have left more behind: the arbiter fetches again.
    max_fetch_size: int | None = None

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        worker_id: str | None = None,
        heartbeat_interval: float = const.HEARTBEAT_INTERVAL,
        dead_worker_threshold: float = const.DEAD_WORKER_THRESHOLD,
        dead_worker_check_interval: float = const.DEAD_WORKER_CHECK_INTERVAL,
        idle_poll_interval: float = const.IDLE_POLL_INTERVAL,
    ):
        if dead_worker_threshold < 2 * heartbeat_interval:
            raise ValueError(
                f"dead_worker_threshold ({dead_worker_threshold} s) must be at least twice "
                f"heartbeat_interval ({heartbeat_interval} s), or live workers look dead"
            )
        self.namespace = const.DEFAULT_NAMESPACE
        self.worker_id = worker_id or uuid.uuid4().hex
        #: See spinach.const for the trade-off of each of these.
        self.heartbeat_interval = heartbeat_interval
        self.dead_worker_threshold = dead_worker_threshold
        self.dead_worker_check_interval = dead_worker_check_interval
        self.idle_poll_interval = idle_poll_interval
        self._clock = clock
        self._something_happened = threading.Event()
        #: What ``relay_notification`` calls instead of ``notify_local`` when set: the
        #: worker process's arbiter, which may fetch in the subscriber thread at once.
        self.on_notification: Callable[[], None] | None = None

    # -- time and wake-ups -------------------------------------------------------------

    def now(self) -> float:
        """The broker's current time, seconds since the epoch."""
        return self._clock()

    def set_namespace(self, namespace: str) -> None:
        """Bind the broker to its engine's namespace, before any other call."""
        self.namespace = namespace

    def allow_connections(self, count: int) -> None:  # noqa: B027 - optional hook
        """Let the client keep ``count`` connections open at once (a worker of ``count``
        jobs at a time, each maybe waiting on one); no-op without a connection pool."""

    def notify_local(self) -> None:
        """Wake this process's arbiter: something may be ready to fetch."""
        self._something_happened.set()

    def event_pending(self) -> bool:
        """Whether a notification came that ``wait_for_event`` has not taken in yet."""
        return self._something_happened.is_set()

    def relay_notification(self) -> None:
        """A notification from the broker (another process enqueued, say), heard by the
        subscriber thread: ``on_notification`` if set, else ``notify_local``."""
        handler = self.on_notification
        if handler is None:
            self.notify_local()
        else:
            handler()

    def wait_for_event(self, timeout: float) -> None:
        """Block the arbiter until a notification arrives or ``timeout`` seconds pass."""
        if self._something_happened.wait(timeout=max(timeout, 0)):
            self._something_happened.clear()

    def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare to serve a worker process (connections, scripts)."""

    def stop(self) -> None:
        """Release what ``start`` took; wake the arbiter so it sees the stop."""
        self.notify_local()

    def run_subscriber(self, stopping: threading.Event) -> None:
        """Body of the subscriber thread: relay broker notifications (``relay_notification``).

        Returns once ``stopping`` is set. A broker without remote notifications just waits.
        """
        stopping.wait()

    # -- client side -------------------------------------------------------------------

    @abstractmethod
    def enqueue_jobs(self, jobs: Sequence[Job], from_failure: bool = False) -> None:
        """Store jobs: due ones in their queue, later ones in the future set.

        All or none: every payload is serialized before anything is stored, so a job that
        cannot be serialized leaves nothing behind. Enqueuing the same job twice (a retried
        command) stores it once. ``from_failure`` marks jobs coming back from a worker for
        a retry: each is taken out of running and its concurrency slot freed, atomically.
        """

    @abstractmethod
    def push_raw(self, queue: str, payload: str | bytes) -> None:
        """Put a payload in a queue as is, unchecked (tests and tooling)."""

    # -- worker side -------------------------------------------------------------------

    @abstractmethod
    def get_jobs_from_queue(self, queue: str | Sequence[str], max_jobs: int) -> list[Job]:
        """Take up to ``max_jobs`` jobs from the queues, in the order given.

        Each job taken is marked running under ``worker_id`` and counts against its task's
        ``max_concurrency``; a job whose task is at its limit stays queued. A payload that
        cannot be decoded goes to the dead letters instead.
        """

    @abstractmethod
    def remove_job_from_running(self, job: Job) -> None:
        """Forget a job that ended (SUCCEEDED or FAILED) and free its concurrency slot.

        Only a job this worker process runs, in the job's ``attempt`` (any attempt when it
        is None), is forgotten; another is left alone (a late report is a no-op)."""

    def remove_jobs_from_running(self, jobs: Sequence[Job]) -> None:
        """``remove_job_from_running`` for many jobs; brokers do it in one round trip."""
        for job in jobs:
            self.remove_job_from_running(job)

    def room_after_handover(self) -> int | None:
        """None unless the last ``get_jobs_from_queue`` only delivered jobs handed over
        with their wake-up, without asking the broker (``RedisBroker``); then how many
        more the worker's idle registration may still be handed: at 0, a fetch should
        follow to register it again. Always None here."""
        return None

    def unsettled_jobs(self) -> list[Job]:
        """Jobs a fetch took whose reply was lost (an outage), delivered now; a stopping
        worker gives them back. None here: an in-process fetch cannot lose its reply."""
        return []

    @abstractmethod
    def return_jobs(self, jobs: Sequence[Job]) -> None:
        """Give back fetched jobs that never started: to the front of their queue,
        without counting a retry."""

    @abstractmethod
    def dead_letter(self, job: Job, reason: str) -> None:
        """Set aside a fetched job that cannot run (its task is unknown)."""

    @abstractmethod
    def move_future_jobs(self) -> int:
        """Move due future jobs to their queues and fire due periodic tasks; how many."""

    @abstractmethod
    def next_future_job_delta(self) -> float | None:
        """Seconds until the next future job or periodic task is due, None if none."""

    @abstractmethod
    def register_periodic_tasks(self, tasks: Iterable[Task]) -> None:
        """Make the periodic tasks among ``tasks`` (every task of a worker) fire once per
        period, whatever the number of workers.

        A task of ``tasks`` that is not periodic (any more) stops firing. Periodic tasks
        whose name is not among ``tasks`` are left alone: another kind of worker of the
        namespace owns them.
        """

    @abstractmethod
    def set_concurrency_keys(self, tasks: Iterable[Task]) -> None:
        """Record the ``max_concurrency`` of ``tasks``; a task without one has its limit
        removed (a limit dropped from the code stops applying)."""

    @abstractmethod
    def is_queue_empty(self, queue: str) -> bool:
        """Whether no job waits in ``queue`` (future jobs do not count)."""

    # -- worker liveness ---------------------------------------------------------------

    @abstractmethod
    def register_worker(self, info: WorkerInfo) -> None:
        """Announce this worker process; also counts as a heartbeat."""

    @abstractmethod
    def heartbeat(self) -> None:
        """Tell the others this worker process is alive."""

    @abstractmethod
    def deregister_worker(self) -> None:
        """Remove this worker process from the live ones (after a clean stop)."""

    @abstractmethod
    def recover_dead_workers(self, threshold: float) -> list[Job]:
        """Recover the running jobs of workers silent for ``threshold`` seconds.

        Jobs with retries left are re-enqueued with one more retry (status QUEUED or
        WAITING); the others are dropped as FAILED. Running jobs whose worker is not
        registered at all (orphans) are recovered the same way, at once: a worker must
        register before it fetches. Returns the recovered jobs.
        """

    # -- dead letters ------------------------------------------------------------------

    @abstractmethod
    def list_dead_letters(self) -> list[DeadLetter]:
        """Every dead letter of the namespace, oldest first."""

    @abstractmethod
    def retry_dead_letters(self, ids: Iterable[str] | None = None) -> int:
        """Put dead letters (all, or those ids) back in their queue; how many.

        The job of a dead letter that held a unique key takes it again, for its
        ``unique_ttl`` counted from now (while the job lives without one; not when its hold
        had lapsed before it was dead-lettered). While another stored job holds that
        key, the dead letter stays, not counted, and a warning names both jobs
        (``log_kept_dead_letters``): a second copy is never queued beside a unique job."""

    @abstractmethod
    def purge_dead_letters(self, ids: Iterable[str] | None = None) -> int:
        """Delete dead letters (all, or those ids); how many."""

    # -- inspection --------------------------------------------------------------------

    @abstractmethod
    def queue_lengths(self) -> dict[str, int]:
        """Number of jobs waiting in each non-empty queue."""

    @abstractmethod
    def scheduled_jobs(self) -> list[Job]:
        """Jobs due in the future, soonest first."""

    @abstractmethod
    def running_jobs(self) -> dict[str, list[Job]]:
        """Running jobs by worker id, each with the ``attempt`` (fetch id) it runs in, so
        the worker running it can end it with ``remove_job_from_running``."""

    @abstractmethod
    def workers(self) -> list[WorkerInfo]:
        """Live worker processes with their last heartbeat."""

    @abstractmethod
    def inspect_periodic_tasks(self) -> list[tuple[float, str]]:
        """``(next run timestamp, task name)`` of each periodic task, soonest first."""

    @abstractmethod
    def queue_jobs(self, queue: str, offset: int = 0, limit: int = 50) -> list[Job]:
        """Up to ``limit`` jobs waiting in ``queue`` from position ``offset``, next first;
        payloads that cannot be decoded are left out."""

    def scheduled_counts(self) -> dict[str, int]:
        """Jobs due in the future, per queue (brokers count without decoding them)."""
        counts: dict[str, int] = {}
        for job in self.scheduled_jobs():
            counts[job.queue] = counts.get(job.queue, 0) + 1
        return counts

    def scheduled_count(self) -> int:
        """How many jobs are due in the future (brokers count without reading them)."""
        return len(self.scheduled_jobs())

    def scheduled_page(self, offset: int = 0, limit: int = 50) -> tuple[list[Job], int]:
        """Up to ``limit`` jobs due in the future from position ``offset``, soonest first,
        and how many there are in all (brokers read only that page; to count them,
        ``scheduled_count``)."""
        jobs = self.scheduled_jobs()
        return jobs[offset : offset + max(limit, 0)], len(jobs)

    def dead_letter_count(self) -> int:
        """How many dead letters the namespace has (brokers count without reading them)."""
        return len(self.list_dead_letters())

    def running_since(self) -> dict[str, float]:
        """When each running job was fetched, by job id (for run times); {} if unknown."""
        return {}

    # -- history (spinach.history) -----------------------------------------------------

    @abstractmethod
    def record_history(
        self, records: Sequence[HistoryRecord], retention: float, max_records: int
    ) -> None:
        """Keep the records of finished jobs, then drop the records older than
        ``retention`` seconds and the oldest beyond ``max_records``; count each record
        in ``finished_counts``. Atomic; a call sent again keeps them once."""

    @abstractmethod
    def history(self, offset: int = 0, limit: int = 50) -> list[HistoryRecord]:
        """Up to ``limit`` records of finished jobs from position ``offset``, newest first."""

    @abstractmethod
    def history_record(self, job_id: str) -> HistoryRecord | None:
        """The record of the finished job ``job_id``, None if it has none (any more)."""

    @abstractmethod
    def finished_counts(self, minutes: int) -> dict[str, list[int]]:
        """Jobs finished per queue in each of the last ``minutes`` minutes, oldest first
        (the current minute last), from the records kept; queues without any left out."""

    @abstractmethod
    def flush(self) -> None:
        """Delete the jobs, workers, schedules, dead letters and history of the namespace
        (tests and tooling); shared state (below) is left to its expiry."""

    # -- shared state ------------------------------------------------------------------
    #
    # Small values every process of the namespace sees: claims, counters, values, expiring
    # members and hashes, for code built on the engine (the Celery facade's revocations,
    # terminate requests, chord counters, beat claims, worker registry). Each entry is
    # named by ``name`` and stored under ``key(name)``. A ``ttl`` is in seconds and counts
    # from the call; expiry follows the storage's clock (the injected ``clock`` in memory,
    # Redis's own TTLs on Redis), an ``until`` is a time of ``now()``. Each call is atomic.

    def key(self, name: str) -> str:
        """The storage key of the namespace's entry ``name``: ``{<namespace>}/<name>`` (the
        braces make the namespace the Redis Cluster hash tag: one slot per namespace); an
        ``Unscoped`` name as is."""
        if isinstance(name, Unscoped):
            return str(name)
        return f"{{{self.namespace}}}/{name}"

    @abstractmethod
    def claim(self, name: str, ttl: float) -> bool:
        """Take ``name`` for ``ttl`` seconds if nobody holds it: whether this call took it.

        Atomic set-if-absent: of concurrent callers exactly one gets True, until the claim
        expires or is deleted. Safe to send twice: a call whose reply was lost and that is
        sent again still gets True.
        """

    @abstractmethod
    def increment(self, name: str, ttl: float, by: int = 1) -> int:
        """Add ``by`` (negative: subtract) to the counter ``name`` (0 when absent) and make
        it expire ``ttl`` seconds from now; the new count. Atomic; counts once even when
        the call is sent again after a lost reply."""

    @abstractmethod
    def set_values(self, values: Mapping[str, str], ttl: float) -> None:
        """Store each ``name -> value``, each expiring ``ttl`` seconds from now, replacing
        what was there. All at once: no reader sees some of them only."""

    @abstractmethod
    def get_values(self, names: Sequence[str]) -> list[str | None]:
        """The value (or count, as text) of each name, None where absent or expired; read
        at one moment."""

    @abstractmethod
    def delete(self, names: Sequence[str]) -> None:
        """Delete the entries ``names``, of any kind; absent ones are ignored. Atomic."""

    @abstractmethod
    def add_members(self, name: str, until: Mapping[str, float]) -> None:
        """Add each ``member -> until`` to the expiring set ``name``: a member is in the set
        until ``until`` (a time of ``now()``); a member added again gets its new ``until``.
        Members already expired are dropped. Atomic."""

    @abstractmethod
    def members(self, name: str) -> dict[str, float]:
        """``{member: until}`` of the expiring set ``name``, without expired members."""

    @abstractmethod
    def hash_set(self, name: str, field: str, value: str, ttl: float | None = None) -> None:
        """Set ``field`` of the hash ``name``; with ``ttl``, the whole hash expires ``ttl``
        seconds from now (None leaves its expiry as it was). Atomic."""

    @abstractmethod
    def hash_get(self, name: str, field: str) -> str | None:
        """``field`` of the hash ``name``, None when absent."""

    @abstractmethod
    def hash_delete(self, name: str, field: str) -> None:
        """Remove ``field`` from the hash ``name`` (the hash goes with its last field)."""

    @abstractmethod
    def publish_value(
        self, name: str, value: str | bytes, ttl: float | None, keep_status: str | None = None
    ) -> bool:
        """Store ``value`` under ``name`` (expiring ``ttl`` seconds from now; None: never)
        and publish it to the watches of ``name``, unless the stored value is to be kept: a
        JSON object whose ``"status"`` is ``keep_status``. Whether ``value`` is stored now.

        Atomic. Safe to send twice: a call sent again after a lost reply finds its own
        value stored and still says True.
        """

    @abstractmethod
    def get_bytes(self, names: Sequence[str]) -> list[bytes | None]:
        """``get_values`` as stored, for values that need not be text (a pickled result):
        bytes, text values UTF-8 encoded; None where absent or expired."""

    @abstractmethod
    def watch(
        self, names: Sequence[str], timeout: float | None = None
    ) -> AbstractContextManager[Watch]:
        """Listen to the values ``publish_value`` stores under ``names``, for a ``with``
        block: every value published once the block started is delivered by ``Watch.next``,
        even one published before ``next`` is called. The builtin ``TimeoutError`` when the
        storage does not confirm the subscription within ``timeout`` seconds."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} namespace={self.namespace!r} worker={self.worker_id}>"
