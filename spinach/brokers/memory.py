"""The in-process broker: jobs live in a Python object shared by the brokers of one process.

It keeps payloads as JSON strings, as Redis does, so what works here has been through the
same serialization; ``peer()`` gives a second broker on the same store to play another worker
process. Every operation takes the store's single lock, so each one is atomic.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import math
import threading
import time
import uuid
import weakref
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from .. import job_codec, priority
from ..exc import InvalidPayloadError
from ..forks import reset_after_fork
from ..history import FINISHED_COUNT_MINUTES, HistoryRecord, counts_by_queue
from ..job import Job, JobStatus
from ..rate_limit import RateLimit, gcra
from ..task import Task
from .base import (
    Broker,
    Clock,
    DeadLetter,
    Watch,
    WorkerInfo,
    log_kept_dead_letters,
    normalize_queues,
)
from .memory_shared import Inbox, SharedEntries


class _Entry(NamedTuple):
    """A payload waiting in a queue, with its job id when one could be read."""

    job_id: str | None
    payload: str | bytes


class _Future(NamedTuple):
    """A job due later; ordered by ``at`` then by arrival."""

    at: float
    seq: int
    job_id: str
    queue: str
    payload: str


class _Running(NamedTuple):
    """A fetched job, with the worker process that fetched it and the fetch (attempt)."""

    worker_id: str
    task_name: str
    payload: str
    attempt: str
    since: float = 0.0  #: when it was fetched


@dataclass
class _Periodic:
    """The schedule of a periodic task and what its jobs look like."""

    name: str
    task: Task  #: its jobs are this task's (``Task.new_job``)
    period: float
    next_at: float


@dataclass
class _Namespace:
    """Everything a namespace holds."""

    queues: dict[str, deque[_Entry]] = field(default_factory=dict)
    queued_ids: Counter[str] = field(default_factory=Counter)
    future: list[_Future] = field(default_factory=list)  # a heap
    future_ids: set[str] = field(default_factory=set)
    running: dict[str, _Running] = field(default_factory=dict)
    running_by_task: Counter[str] = field(default_factory=Counter)
    limits: dict[str, int] = field(default_factory=dict)
    rate_limits: dict[str, RateLimit] = field(default_factory=dict)
    rate_tat: dict[str, float] = field(default_factory=dict)  # task -> GCRA's TAT
    rate_deferred: dict[str, float] = field(default_factory=dict)  # task -> deferred until
    unique: dict[str, tuple[str, float]] = field(default_factory=dict)  # key -> (id, expiry)
    unique_ttl: dict[str, float] = field(default_factory=dict)  # key -> seconds it is held for
    unique_of: dict[str, str] = field(default_factory=dict)  # job id -> its unique key
    periodic: dict[str, _Periodic] = field(default_factory=dict)
    workers: dict[str, WorkerInfo] = field(default_factory=dict)
    dead_letters: dict[str, DeadLetter] = field(default_factory=dict)
    dead_unique: dict[str, str] = field(default_factory=dict)  # letter id -> its job's key
    dead_unique_ttl: dict[str, float] = field(default_factory=dict)  # letter id -> held for
    history: dict[str, tuple[float, str]] = field(default_factory=dict)  # id -> (at, JSON)
    finished_counts: Counter[str] = field(default_factory=Counter)  # "<minute> <queue>"


class _Store:
    """What peers share: the namespaces, one lock around them, and the peers to wake."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.namespaces: dict[str, _Namespace] = {}
        self.peers: weakref.WeakSet[MemoryBroker] = weakref.WeakSet()
        self.sequence = itertools.count()
        self.shared = SharedEntries()  # by full key: namespaced by ``Broker.key``
        self.published = threading.Condition(self.lock)  # notified at each publish_value
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: a parent's thread may have held the lock at the fork (the
        child gets a copy of the store, as it was then)."""
        self.lock = threading.Lock()
        self.published = threading.Condition(self.lock)


class MemoryBroker(Broker):
    """A broker keeping jobs in memory, for tests and single-process use.

    Nothing survives the process. Brokers made with ``peer()`` share the store and behave as
    other worker processes of the same namespace.
    """

    def __init__(self, *, clock: Clock = time.time, worker_id: str | None = None, **options: Any):
        super().__init__(clock=clock, worker_id=worker_id, **options)
        self._options = options
        self._info: WorkerInfo | None = None  # what this worker registered, to re-register
        self._store = _Store()
        self._store.peers.add(self)

    def peer(self, worker_id: str | None = None) -> MemoryBroker:
        """Another broker on the same store, clock and namespace: another worker process."""
        other = MemoryBroker(clock=self._clock, worker_id=worker_id, **self._options)
        other.set_namespace(self.namespace)
        with self._store.lock:
            other._store = self._store
            self._store.peers.add(other)
        return other

    # -- helpers (called with the lock held) --------------------------------------------

    def _state(self) -> _Namespace:
        return self._store.namespaces.setdefault(self.namespace, _Namespace())

    def _notify_peers(self) -> None:
        """Wake every broker of this namespace sharing the store, this one included."""
        with self._store.lock:
            peers = [p for p in self._store.peers if p.namespace == self.namespace]
        for peer in peers:
            peer.notify_local()

    @staticmethod
    def _location(state: _Namespace, job_id: str) -> JobStatus | None:
        """Where a job id is stored, as the status it has there; None if nowhere."""
        if state.queued_ids[job_id] > 0:
            return JobStatus.QUEUED
        if job_id in state.future_ids:
            return JobStatus.WAITING
        if job_id in state.running:
            return JobStatus.RUNNING
        return None

    @staticmethod
    def _push(state: _Namespace, queue: str, entry: _Entry, front: bool = False) -> None:
        entries = state.queues.setdefault(queue, deque())
        if front:
            entries.appendleft(entry)
        else:
            entries.append(entry)
        if entry.job_id is not None:
            state.queued_ids[entry.job_id] += 1

    @staticmethod
    def _discount(state: _Namespace, job_id: str | None) -> None:
        """Forget one queued occurrence of a job id."""
        if job_id is not None:
            state.queued_ids[job_id] -= 1
            if state.queued_ids[job_id] <= 0:
                del state.queued_ids[job_id]

    def _store_job(self, state: _Namespace, job: Job, payload: str, now: float) -> None:
        """Put a job in its queue or the future set, once."""
        where = self._location(state, job.id)
        if where is None and job.unique_key is not None:
            where = self._hold_unique(state, job, now)
        if where is not None:
            job.status = where
        elif job.at_timestamp <= now:
            self._push(state, job.queue, _Entry(job.id, payload))
            job.status = JobStatus.QUEUED
        else:
            seq = next(self._store.sequence)
            heapq.heappush(state.future, _Future(job.at_timestamp, seq, job.id, job.queue, payload))
            state.future_ids.add(job.id)
            job.status = JobStatus.WAITING

    def _hold_unique(self, state: _Namespace, job: Job, now: float) -> JobStatus | None:
        """Let ``job`` hold its unique key (None), or make it the stored job holding the
        key already and return that job's status."""
        key = job.unique_key
        assert key is not None
        held = self._unique_holder(state, key, now)
        if held is not None:
            job.id = held[1]
            return held[0]
        _take_unique(state, key, job.id, now, job.unique_ttl)
        return None

    def _unique_holder(
        self, state: _Namespace, key: str, now: float
    ) -> tuple[JobStatus, str] | None:
        """Where the stored job holding ``key`` is, and its id; None when the key is free."""
        holder, expiry = state.unique.get(key, ("", math.inf))
        where = self._location(state, holder) if holder and expiry > now else None
        return None if where is None else (where, holder)

    @staticmethod
    def _release_unique(state: _Namespace, job_id: str) -> None:
        """Release the unique key a job that ended holds, if any."""
        key = state.unique_of.pop(job_id, None)
        if key is not None and state.unique.get(key, ("",))[0] == job_id:
            del state.unique[key]
            state.unique_ttl.pop(key, None)

    def _release(
        self, state: _Namespace, job_id: str, worker_id: str, attempt: str | None = None
    ) -> _Running | None:
        """Take a job out of running if ``worker_id`` runs it, in the attempt ``attempt``
        (any when None), freeing its slot."""
        running = state.running.get(job_id)
        if running is None or running.worker_id != worker_id:
            return None
        if attempt and running.attempt != attempt:
            return None  # another attempt: the worker fetched its recovered job again
        del state.running[job_id]
        state.running_by_task[running.task_name] -= 1
        if state.running_by_task[running.task_name] <= 0:
            del state.running_by_task[running.task_name]
        return running

    def _release_own(self, state: _Namespace, job: Job) -> _Running | None:
        """Release ``job`` if this worker runs it, in the attempt it reports on."""
        return self._release(state, job.id, self.worker_id, job.attempt)

    def _add_dead_letter(self, state: _Namespace, letter: DeadLetter) -> str:
        """Keep a dead letter, in arrival order; its id. The same payload under a known id
        only gets the new reason and time, keeping its place; a different one gets a new id."""
        existing = state.dead_letters.get(letter.id)
        if existing is not None and existing.payload != letter.payload:
            letter, existing = replace(letter, id=uuid.uuid4().hex), None
        if existing is not None:
            letter = replace(existing, reason=letter.reason, failed_at=letter.failed_at)
        state.dead_letters[letter.id] = letter  # a known key keeps its place
        return letter.id

    # -- client side -------------------------------------------------------------------

    def enqueue_jobs(self, jobs: Sequence[Job], from_failure: bool = False) -> None:
        """Store jobs (see ``Broker.enqueue_jobs``).

        A retry (``from_failure``) of a job this worker does not run any more (recovery
        took it from this worker, declared dead) stores nothing, whatever became of the
        job, and gets status NOT_SET: the job is not this worker's to report.
        """
        payloads = [job_codec.encode(job) for job in jobs]  # all or none: encode before storing
        with self._store.lock:
            state, now = self._state(), self.now()
            for job, payload in zip(jobs, payloads, strict=True):
                if from_failure and not self._release_own(state, job):
                    job.status = JobStatus.NOT_SET  # a late retry: nothing stored
                else:
                    self._store_job(state, job, payload, now)
        self._notify_peers()

    def push_raw(self, queue: str, payload: str | bytes) -> None:
        with self._store.lock:
            self._push(self._state(), queue, _Entry(_payload_id(payload), payload))
        self._notify_peers()

    # -- worker side -------------------------------------------------------------------

    def get_jobs_from_queue(self, queue: str | Sequence[str], max_jobs: int) -> list[Job]:
        jobs: list[Job] = []
        attempt = uuid.uuid4().hex  # this fetch's id, as RedisBroker's
        with self._store.lock:
            state = self._state()
            for name in _with_bands(normalize_queues(queue), state.queues):
                if len(jobs) >= max_jobs:
                    break
                jobs += self._take(state, name, max_jobs - len(jobs), attempt)
        return jobs

    def _take(self, state: _Namespace, queue: str, max_jobs: int, attempt: str) -> list[Job]:
        """Take up to ``max_jobs`` runnable jobs of one queue, leaving the others in order."""
        entries = state.queues.pop(queue, None)
        if not entries:
            return []
        taken: list[Job] = []
        kept: deque[_Entry] = deque()
        while entries and len(taken) < max_jobs:
            entry = entries.popleft()
            job = self._decode(state, queue, entry)
            if job is None:
                continue
            runs = not self._at_limit(state, job.task_name) and self._rate(state, queue, job, entry)
            if runs is False:  # at a limit: it keeps its place
                kept.append(entry)
            elif runs:  # (None: deferred to the future jobs by its rate limit)
                self._discount(state, entry.job_id)
                self._start_running(state, job, entry.payload, attempt)
                taken.append(job)
        kept.extend(entries)
        if kept:
            state.queues[queue] = kept
        return taken

    def _decode(self, state: _Namespace, queue: str, entry: _Entry) -> Job | None:
        """The job of a queued payload, or None after moving a bad payload to dead letters."""
        try:
            job = job_codec.decode(entry.payload)
        except Exception as exc:  # whatever the reason, the payload is kept, never lost
            reason = str(exc) if isinstance(exc, InvalidPayloadError) else repr(exc)
        else:
            if job.id not in state.running:
                return job
            reason = f"job {job.id} is already running"  # a raw copy of a running job
        self._discount(state, entry.job_id)
        payload = entry.payload
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8", errors="replace")
        letter = DeadLetter(entry.job_id or uuid.uuid4().hex, queue, payload, reason, self.now())
        self._add_dead_letter(state, letter)
        if entry.job_id and self._location(state, entry.job_id) is None:  # no other copy:
            self._release_unique(state, entry.job_id)  # the job ends with its dead letter
        return None

    def _rate(self, state: _Namespace, queue: str, job: Job, entry: _Entry) -> bool | None:
        """Whether the task's rate limit lets ``job`` start now (counting it if so). When
        not, the first such job is deferred to the future jobs at the time one may start
        (None: it left its queue); the others stay queued (False) until that time."""
        limit = state.rate_limits.get(job.task_name)
        if limit is None:
            return True
        now = self.now()
        allowed, at = gcra(state.rate_tat.get(job.task_name), now, limit)
        if allowed:
            state.rate_tat[job.task_name] = at
            return True
        if state.rate_deferred.get(job.task_name, now) > now:
            return False  # a job of the task is deferred already: it wakes the workers
        state.rate_deferred[job.task_name] = at
        self._discount(state, entry.job_id)
        payload = entry.payload
        payload = payload.decode() if isinstance(payload, bytes) else payload
        seq = next(self._store.sequence)
        heapq.heappush(state.future, _Future(at, seq, job.id, queue, payload))
        state.future_ids.add(job.id)
        return None

    @staticmethod
    def _at_limit(state: _Namespace, task_name: str) -> bool:
        limit = state.limits.get(task_name)
        return limit is not None and state.running_by_task[task_name] >= limit

    def _start_running(
        self, state: _Namespace, job: Job, payload: str | bytes, attempt: str
    ) -> None:
        if isinstance(payload, bytes):
            payload = payload.decode()  # it decoded as a job, so it is UTF-8
        state.running[job.id] = _Running(
            self.worker_id, job.task_name, payload, attempt, self.now()
        )
        state.running_by_task[job.task_name] += 1
        job.status, job.attempt = JobStatus.RUNNING, attempt

    def remove_job_from_running(self, job: Job) -> None:
        self.remove_jobs_from_running([job])

    def remove_jobs_from_running(self, jobs: Sequence[Job]) -> None:
        with self._store.lock:
            state = self._state()
            released = [self._release_own(state, job) for job in jobs]
            for job, running in zip(jobs, released, strict=True):
                if running is not None and state.unique_of:
                    self._release_unique(state, job.id)
            limited = any(r is not None and r.task_name in state.limits for r in released)
        if limited:
            self._notify_peers()  # a slot of a limited task is free: a waiting job may run

    def return_jobs(self, jobs: Sequence[Job]) -> None:
        payloads = [job_codec.encode(job) for job in jobs]
        with self._store.lock:
            state = self._state()
            for job, payload in reversed(list(zip(jobs, payloads, strict=True))):
                if not self._release_own(state, job):
                    job.status = JobStatus.NOT_SET  # a late give-back: nothing stored
                    continue
                where = self._location(state, job.id)
                if where is None:
                    self._push(state, job.queue, _Entry(job.id, payload), front=True)
                    where = JobStatus.QUEUED
                job.status = where
        self._notify_peers()

    def dead_letter(self, job: Job, reason: str) -> None:
        payload = job_codec.encode(job)
        with self._store.lock:
            state = self._state()
            if self._release_own(state, job) is None:
                return  # a late worker's job: recovery took it already, it stays there
            key = state.unique_of.get(job.id)
            ttl = _held_for(state, key, job.id, self.now()) if key is not None else None
            self._release_unique(state, job.id)
            letter = DeadLetter(job.id, job.queue, payload, reason, self.now())
            letter_id = self._add_dead_letter(state, letter)
            if key is not None:
                state.dead_unique[letter_id] = key  # taken again by retry_dead_letters
            if ttl is not None:
                state.dead_unique_ttl[letter_id] = ttl
        self._notify_peers()  # a concurrency slot is free

    def move_future_jobs(self) -> int:
        with self._store.lock:
            state, now = self._state(), self.now()
            moved = self._move_due(state, now) + self._fire_periodic(state, now)
        if moved:
            self._notify_peers()
        return moved

    def _move_due(self, state: _Namespace, now: float) -> int:
        moved = 0
        while state.future and state.future[0].at <= now:
            due = heapq.heappop(state.future)
            state.future_ids.discard(due.job_id)
            self._push(state, due.queue, _Entry(due.job_id, due.payload))
            moved += 1
        return moved

    def _fire_periodic(self, state: _Namespace, now: float) -> int:
        fired = 0
        for periodic in state.periodic.values():
            if periodic.next_at > now:
                continue
            job = periodic.task.new_job(now)
            self._push(state, job.queue, _Entry(job.id, job_codec.encode(job)))
            periodic.next_at = _next_run(periodic.next_at, periodic.period, now)
            fired += 1
        return fired

    def next_future_job_delta(self) -> float | None:
        with self._store.lock:
            state = self._state()
            times = [p.next_at for p in state.periodic.values()]
            if state.future:
                times.append(state.future[0].at)
            return min(times) - self.now() if times else None

    def register_periodic_tasks(self, tasks: Iterable[Task]) -> None:
        with self._store.lock:
            state, now = self._state(), self.now()
            for task in tasks:
                if task.periodicity is None:
                    state.periodic.pop(task.name, None)
                else:
                    state.periodic[task.name] = _schedule(task, state.periodic.get(task.name), now)
        self._notify_peers()  # a newly registered task is due at once

    def set_concurrency_keys(self, tasks: Iterable[Task]) -> None:
        with self._store.lock:
            state = self._state()
            for task in tasks:
                if task.max_concurrency is None:
                    state.limits.pop(task.name, None)
                else:
                    state.limits[task.name] = task.max_concurrency
                rate = task.rate
                if rate is None:
                    state.rate_limits.pop(task.name, None)
                else:
                    state.rate_limits[task.name] = rate
        self._notify_peers()  # a raised limit may let queued jobs run

    def is_queue_empty(self, queue: str) -> bool:
        with self._store.lock:
            queues = self._state().queues
            return not any(queues.get(name) for name in [queue, *priority.bands(queue)])

    # -- worker liveness ---------------------------------------------------------------

    def register_worker(self, info: WorkerInfo) -> None:
        with self._store.lock:
            now = self.now()
            stored = replace(info, queues=list(info.queues), last_heartbeat=now)
            stored.started_at = stored.started_at or now
            self._state().workers[stored.id] = stored
            self._info = replace(stored)

    def heartbeat(self) -> None:
        with self._store.lock:
            workers = self._state().workers
            info = workers.get(self.worker_id)
            if info is None and self._info is not None:  # declared dead, yet alive
                info = workers[self.worker_id] = replace(self._info)
            if info is not None:
                info.last_heartbeat = self.now()

    def deregister_worker(self) -> None:
        with self._store.lock:
            self._state().workers.pop(self.worker_id, None)
            self._info = None

    def recover_dead_workers(self, threshold: float) -> list[Job]:
        with self._store.lock:
            state, deadline = self._state(), self.now() - threshold
            for worker_id, info in list(state.workers.items()):
                if worker_id != self.worker_id and info.last_heartbeat < deadline:
                    del state.workers[worker_id]
            lost = [
                (job_id, running.worker_id)
                for job_id, running in state.running.items()
                if running.worker_id != self.worker_id and running.worker_id not in state.workers
            ]
            recovered = [self._recover(state, job_id, owner) for job_id, owner in lost]
        if recovered:
            self._notify_peers()
        return recovered

    def _recover(self, state: _Namespace, job_id: str, worker_id: str) -> Job:
        """Requeue a job of a dead worker with one more retry, or fail it if it has none."""
        running = self._release(state, job_id, worker_id)
        assert running is not None
        job = job_codec.decode(running.payload)
        if job.should_retry:
            job.retries += 1
            self._push(state, job.queue, _Entry(job.id, job_codec.encode(job)))
            job.status = JobStatus.QUEUED
        else:
            job.status = JobStatus.FAILED
            self._release_unique(state, job_id)
        return job

    # -- dead letters ------------------------------------------------------------------

    def list_dead_letters(self) -> list[DeadLetter]:
        with self._store.lock:
            letters = list(self._state().dead_letters.values())
        return [replace(letter) for letter in letters]  # in arrival order, as in Redis

    def dead_letter_count(self) -> int:
        with self._store.lock:
            return len(self._state().dead_letters)

    def retry_dead_letters(self, ids: Iterable[str] | None = None) -> int:
        kept: list[tuple[str, str, str]] = []
        with self._store.lock:
            state = self._state()
            letters = _select(state.dead_letters, ids)
            for letter in letters:
                holder = self._retry_letter(state, letter)
                if holder is not None:
                    kept.append((letter.id, state.dead_unique[letter.id], holder))
        log_kept_dead_letters(kept)
        if len(letters) > len(kept):
            self._notify_peers()
        return len(letters) - len(kept)

    def _retry_letter(self, state: _Namespace, letter: DeadLetter) -> str | None:
        """Queue a dead letter's payload again, its job taking back its unique key; or keep
        it and return ``"<status>/<id>"`` of the other job holding that key."""
        job_id = _payload_id(letter.payload)
        key = state.dead_unique.get(letter.id) if job_id else None
        held = self._unique_holder(state, key, self.now()) if key else None
        if held is not None and held[1] != job_id:
            return f"{held[0].name}/{held[1]}"
        ttl = state.dead_unique_ttl.pop(letter.id, None)
        if key and job_id and held is None and ttl != 0:
            _take_unique(state, key, job_id, self.now(), ttl)
        del state.dead_letters[letter.id]
        state.dead_unique.pop(letter.id, None)
        self._push(state, letter.queue, _Entry(job_id, letter.payload))
        return None

    def purge_dead_letters(self, ids: Iterable[str] | None = None) -> int:
        with self._store.lock:
            state = self._state()
            letters = _select(state.dead_letters, ids)
            for letter in letters:
                del state.dead_letters[letter.id]
                state.dead_unique.pop(letter.id, None)
                state.dead_unique_ttl.pop(letter.id, None)
        return len(letters)

    # -- inspection --------------------------------------------------------------------

    def queue_lengths(self) -> dict[str, int]:
        with self._store.lock:
            return {name: len(q) for name, q in self._state().queues.items() if q}

    def scheduled_jobs(self) -> list[Job]:
        with self._store.lock:
            futures = sorted(self._state().future)
        return _future_jobs(futures)

    def scheduled_count(self) -> int:
        with self._store.lock:
            return len(self._state().future)

    def scheduled_page(self, offset: int = 0, limit: int = 50) -> tuple[list[Job], int]:
        """Only that page is decoded."""
        with self._store.lock:
            futures = self._state().future
            page = heapq.nsmallest(offset + limit, futures)[offset:] if limit > 0 else []
            total = len(futures)
        return _future_jobs(page), total

    def running_jobs(self) -> dict[str, list[Job]]:
        with self._store.lock:
            running = list(self._state().running.values())
        by_worker: dict[str, list[Job]] = {}
        for entry in running:
            job = _decoded(entry.payload, JobStatus.RUNNING)
            job.attempt = entry.attempt or None  # so remove_job_from_running finds it
            by_worker.setdefault(entry.worker_id, []).append(job)
        return by_worker

    def workers(self) -> list[WorkerInfo]:
        with self._store.lock:
            return [
                replace(info, queues=list(info.queues)) for info in self._state().workers.values()
            ]

    def inspect_periodic_tasks(self) -> list[tuple[float, str]]:
        with self._store.lock:
            return sorted((p.next_at, p.name) for p in self._state().periodic.values())

    def queue_jobs(self, queue: str, offset: int = 0, limit: int = 50) -> list[Job]:
        with self._store.lock:
            entries = list(itertools.islice(self._state().queues.get(queue, ()), offset,
                                            offset + limit))  # fmt: skip
        jobs = []
        for entry in entries:
            with contextlib.suppress(InvalidPayloadError):
                jobs.append(_decoded(_as_text(entry.payload), JobStatus.QUEUED))
        return jobs

    def running_since(self) -> dict[str, float]:
        with self._store.lock:
            return {job_id: r.since for job_id, r in self._state().running.items()}

    def record_history(
        self, records: Sequence[HistoryRecord], retention: float, max_records: int
    ) -> None:
        with self._store.lock:
            state = self._state()
            for record in records:
                state.history.pop(record.id, None)  # re-recorded: newest again
                state.history[record.id] = (record.finished_at, record.to_json())
                state.finished_counts[f"{int(record.finished_at // 60)} {record.queue}"] += 1
            _trim_history(state, self.now(), retention, max_records)

    def history(self, offset: int = 0, limit: int = 50) -> list[HistoryRecord]:
        with self._store.lock:
            newest = sorted(self._state().history.values(), key=lambda r: -r[0])
        return [HistoryRecord.from_json(text) for _, text in newest[offset : offset + limit]]

    def history_record(self, job_id: str) -> HistoryRecord | None:
        with self._store.lock:
            entry = self._state().history.get(job_id)
        return None if entry is None else HistoryRecord.from_json(entry[1])

    def finished_counts(self, minutes: int) -> dict[str, list[int]]:
        with self._store.lock:
            counts = dict(self._state().finished_counts)
        return counts_by_queue(counts, self.now(), minutes)

    def flush(self) -> None:
        with self._store.lock:
            self._store.namespaces.pop(self.namespace, None)

    # -- shared state (see Broker; each call under the store's lock) ----------------------

    def claim(self, name: str, ttl: float) -> bool:
        with self._store.lock:
            return self._store.shared.claim(self.key(name), ttl, self.now())

    def increment(self, name: str, ttl: float, by: int = 1) -> int:
        with self._store.lock:
            return self._store.shared.increment(self.key(name), ttl, by, self.now())

    def set_values(self, values: Mapping[str, str], ttl: float) -> None:
        keyed = {self.key(name): value for name, value in values.items()}
        with self._store.lock:
            self._store.shared.set_values(keyed, ttl, self.now())

    def get_values(self, names: Sequence[str]) -> list[str | None]:
        with self._store.lock:
            now, shared = self.now(), self._store.shared
            return [shared.get_value(self.key(name), now) for name in names]

    def delete(self, names: Sequence[str]) -> None:
        with self._store.lock:
            for name in names:
                self._store.shared.delete(self.key(name))

    def add_members(self, name: str, until: Mapping[str, float]) -> None:
        with self._store.lock:
            self._store.shared.add_members(self.key(name), until, self.now())

    def members(self, name: str) -> dict[str, float]:
        with self._store.lock:
            return self._store.shared.members(self.key(name), self.now())

    def hash_set(self, name: str, field: str, value: str, ttl: float | None = None) -> None:
        with self._store.lock:
            self._store.shared.hash_set(self.key(name), field, value, ttl, self.now())

    def hash_get(self, name: str, field: str) -> str | None:
        with self._store.lock:
            return self._store.shared.hash_get(self.key(name), field, self.now())

    def hash_delete(self, name: str, field: str) -> None:
        with self._store.lock:
            self._store.shared.hash_delete(self.key(name), field, self.now())

    def publish_value(
        self, name: str, value: str | bytes, ttl: float | None, keep_status: str | None = None
    ) -> bool:
        with self._store.lock:
            stored = self._store.shared.publish(self.key(name), value, ttl, keep_status, self.now())
            self._store.published.notify_all()
            return stored

    def get_bytes(self, names: Sequence[str]) -> list[bytes | None]:
        with self._store.lock:
            now, shared = self.now(), self._store.shared
            return [shared.get_bytes(self.key(name), now) for name in names]

    @contextmanager
    def watch(self, names: Sequence[str], timeout: float | None = None) -> Iterator[Watch]:
        """A watch whose inbox ``publish_value`` fills under the store's lock (nothing to
        confirm: ``timeout`` is not needed)."""
        by_key = {self.key(name): name for name in names}
        inbox = Inbox(frozenset(by_key))
        with self._store.lock:
            self._store.shared.inboxes.add(inbox)
        try:
            yield _MemoryWatch(self._store.published, inbox, by_key)
        finally:
            with self._store.lock:
                self._store.shared.inboxes.discard(inbox)


class _MemoryWatch(Watch):
    def __init__(self, published: threading.Condition, inbox: Inbox, by_key: dict[str, str]):
        self._published = published
        self._inbox = inbox
        self._by_key = by_key

    def next(self, timeout: float) -> tuple[str, bytes] | None:
        values = self._inbox.values
        with self._published:
            if not self._published.wait_for(lambda: values, max(timeout, 0)):
                return None
            key, value = values.popleft()
        return self._by_key[key], value


def _payload_id(payload: str | bytes) -> str | None:
    """The job id of a payload when it is a JSON object with a string id, else None."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    job_id = data.get("id") if isinstance(data, dict) else None
    return job_id if isinstance(job_id, str) and job_id else None


def _as_text(payload: str | bytes) -> str:
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload


def _trim_history(state: _Namespace, now: float, retention: float, max_records: int) -> None:
    """Drop records older than ``retention`` or beyond ``max_records``, and old counts."""
    kept = sorted(state.history.items(), key=lambda item: item[1][0])
    kept = [item for item in kept if item[1][0] >= now - retention][-max_records:]
    state.history = dict(kept)
    oldest = int(now // 60) - FINISHED_COUNT_MINUTES
    for key in [k for k in state.finished_counts if int(k.split(" ", 1)[0]) < oldest]:
        del state.finished_counts[key]


def _future_jobs(futures: list[_Future]) -> list[Job]:
    """The jobs of future entries, each due when its entry says (a job deferred by its rate
    limit keeps its old ``at`` in its payload)."""
    jobs = [_decoded(future.payload, JobStatus.WAITING) for future in futures]
    for job, future in zip(jobs, futures, strict=True):
        job.at_timestamp = future.at
    return jobs


def _decoded(payload: str, status: JobStatus) -> Job:
    job = job_codec.decode(payload)
    job.status = status
    return job


def _select(letters: dict[str, DeadLetter], ids: Iterable[str] | None) -> list[DeadLetter]:
    """The dead letters of those ids (all of them when ids is None), unknown ids ignored,
    in arrival order."""
    if ids is None:
        return list(letters.values())
    wanted = set(ids)
    return [letter for letter_id, letter in letters.items() if letter_id in wanted]


def _schedule(task: Task, current: _Periodic | None, now: float) -> _Periodic:
    """The schedule of a periodic task being registered: kept if its period is unchanged."""
    assert task.periodicity is not None
    period = task.periodicity.total_seconds()
    keep = current is not None and current.period == period
    return _Periodic(
        task.name,
        task,
        period,
        current.next_at if keep and current is not None else now,
    )


def _next_run(last_due: float, period: float, now: float) -> float:
    """The first ``last_due + k * period`` strictly after ``now``: missed runs are skipped."""
    next_at = last_due + (math.floor((now - last_due) / period) + 1) * period
    while next_at <= now:  # float rounding
        next_at += period
    return next_at


def _with_bands(queues: list[str], existing: Mapping[str, Any]) -> list[str]:
    """The queues to fetch from: each one, then its priority bands that hold jobs and are
    not named (``spinach.priority``), as the Redis fetch script does."""
    named, names = set(queues), []
    for queue in queues:
        names.append(queue)
        names += [b for b in priority.bands(queue) if b in existing and b not in named]
    return names


def _take_unique(state: _Namespace, key: str, job_id: str, now: float, ttl: float | None) -> None:
    """Let ``job_id`` hold ``key`` from ``now``, for ``ttl`` seconds (None: while it lives)."""
    state.unique[key] = (job_id, math.inf if ttl is None else now + ttl)
    state.unique_of[job_id] = key
    if ttl is None:
        state.unique_ttl.pop(key, None)
    else:
        state.unique_ttl[key] = ttl


def _held_for(state: _Namespace, key: str, job_id: str, now: float) -> float | None:
    """The seconds ``job_id`` holds ``key`` for, to hold it as long again on a dead letter's
    retry: None while it lives, 0 when its hold lapsed (expired, or another job's since)."""
    holder, expiry = state.unique.get(key, ("", math.inf))
    if holder != job_id or expiry <= now:
        return 0.0
    return state.unique_ttl.get(key)
