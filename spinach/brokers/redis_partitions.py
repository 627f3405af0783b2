"""A Redis namespace spread over N partitions, hence over the nodes of a Redis Cluster.

``RedisBroker(url, partitions=N)`` (or ``?partitions=N`` in the URL) with N > 1 builds a
``PartitionedRedisBroker``. Partition ``i`` keeps every key under ``{<ns>~i}/`` (or
``{<ns>~i~k}/``: ``redis_layout.partition_tags`` picks tags in N equal ranges of the
cluster's slots, so the partitions spread over its nodes): a complete copy of the
one-slot layout (queues, future, running and dead jobs, fetch caches, limits), so each
state change is still one script on one slot, and the scripts are the same. The
partitions share the client, the scripts, the worker id, the clock and the settings; they
publish their wake-ups on the namespace's one channel ``{<ns>}/notifications/<db>``.

Routing
-------
A new job goes to ``partition_of(key)`` (CRC-32 of the key, mod N) for its routing key
(``spinach.routing``): the task name of a limited task (``max_concurrency`` or
``rate_limit``: its counters live on that one partition, so the limit stays global), the
unique key of a unique job (uniqueness stays global), its ``partition_key`` (related jobs
stay in order on one partition), else its id: jobs spread evenly, and a job sent again
(a lost reply) lands where it was, so it is still stored once. A job taken from a
partition goes back to it (retry, give back, dead letter, finish): the fetch ids of
partition ``i`` end in ``~i``, and ``Job.attempt`` is one. ``push_raw`` (tests, tooling)
puts payloads on partition 0. A batch is one script per partition it touches: every
payload is serialized first (all or none), but a connection lost midway may leave part of
it stored; sending it again stores the rest, each job once.

Fetching, liveness, schedules
-----------------------------
A fetch asks the partitions in turn, from a partition that moves on by one at every fetch
(a random one first), until it has ``max_jobs``: none is starved, and an idle poll costs up
to N fetch calls. A partition that cannot be reached is passed by while others give jobs
(on a cluster, workers go on with the nodes still up). Order within a queue, and priority
order, hold within a partition only.
Worker registration, heartbeats and recovery run on every partition (N scripts each);
``workers()`` reads partition 0. A periodic task lives on the partition of its name, so it
still fires once per period. The shared state (claims, counters, values: ``key()``) stays
under ``{<ns>}/``, as with one partition, so it outlives a change of the partition count;
``queue_key`` is partition 0's. The history of a finished job is kept on the partition of
its id; the inspection API merges the partitions.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import logging
import math
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar, cast

from .. import job_codec
from ..history import HistoryRecord
from ..job import Job
from ..routing import routing_key
from ..task import Task
from .base import DeadLetter, WorkerInfo, normalize_queues
from .redis import RedisBroker
from .redis_layout import MARKER, partition_of, partition_tags

logger = logging.getLogger("spinach.brokers.redis")

#: Ends the fetch and call ids of a partition, before its index.
ID_SEPARATOR = "~"

T = TypeVar("T")


class _Partition(RedisBroker):
    """One partition: a ``RedisBroker`` bound to ``{<tag i>}/``, made by copying its owner
    (never by ``__init__``), so that it shares the owner's client, scripts and settings."""

    owner: PartitionedRedisBroker
    index: int

    @property
    def worker_id(self) -> str:
        return self.owner.worker_id

    @worker_id.setter
    def worker_id(self, value: str) -> None:
        self.owner.worker_id = value

    def _unique_id(self) -> str:
        return f"{self.owner._unique_id()}{ID_SEPARATOR}{self.index}"

    def heartbeat_reply(self) -> int:
        """One heartbeat: 1, or 2 when the worker had been declared dead (see heartbeat)."""
        return int(self._run("heartbeat", [self.worker_id, self._now(), self._info_json or ""]))


def _partition(owner: PartitionedRedisBroker, index: int) -> _Partition:
    """Partition ``index`` of ``owner``'s namespace, with its own fetch and call state."""
    part = cast("_Partition", copy.copy(owner))
    part.__class__ = _Partition
    for name in ("partitions", "worker_id"):
        part.__dict__.pop(name, None)
    part.owner, part.index = owner, index
    part._fetch_lock, part._calls_lock = threading.Lock(), threading.Lock()
    part._init_handover()  # unused (no hand-over on partitions), but not the owner's
    part._pending_fetch, part._acks, part._failed_calls = None, [], {}
    part._info_json = None
    RedisBroker._bind_namespace(part, partition_tags(owner.namespace, owner.partition_count)[index])
    part.namespace, part.channel = owner.namespace, owner.channel
    return part


class PartitionedRedisBroker(RedisBroker):
    """A ``RedisBroker`` spreading its namespace over ``partition_count`` partitions (see
    the module's docstring); built by ``RedisBroker(..., partitions=N)``."""

    _partitioned = True
    partitions: list[_Partition]

    def set_namespace(self, namespace: str) -> None:
        # Checks the name; the channel and the shared state (prefix) stay the namespace's.
        super().set_namespace(namespace)
        count = self.partition_count
        self.partitions = [_partition(self, index) for index in range(count)]
        #: Tasks ``set_concurrency_keys`` gave a limit: the home of jobs built by hand.
        self._limited: frozenset[str] = frozenset()
        self._new_turns()

    def _new_turns(self) -> None:
        """A random first partition for the fetches of this process."""
        count = self.partition_count
        self._next_turn = itertools.count(random.randrange(count)).__next__

    def _after_fork(self) -> None:
        super()._after_fork()
        for part in self.partitions:  # copies of this broker: not registered themselves
            part._fetch_lock, part._calls_lock = threading.Lock(), threading.Lock()
            part._init_handover()
        self._new_turns()

    # -- routing -------------------------------------------------------------------------

    def home(self, job: Job) -> _Partition:
        """The partition a new job goes to (see Routing in the module's docstring)."""
        key = job.partition_key
        if key is None:
            key = routing_key(job, limited=job.task_name in self._limited)
        return self.partitions[partition_of(key or job.id, self.partition_count)]

    def holder(self, job: Job) -> _Partition:
        """The partition a fetched job runs on (its ``attempt``), else its ``home``."""
        _, separator, index = (job.attempt or "").rpartition(ID_SEPARATOR)
        if separator and index.isdigit() and int(index) < self.partition_count:
            return self.partitions[int(index)]
        return self.home(job)

    def _by_partition(
        self, items: Iterable[T], where: Callable[[T], _Partition]
    ) -> list[tuple[_Partition, list[T]]]:
        """``items`` grouped by partition, in order within each group."""
        groups: dict[int, list[T]] = {}
        parts: dict[int, _Partition] = {}
        for item in items:
            part = where(item)
            groups.setdefault(part.index, []).append(item)
            parts[part.index] = part
        return [(parts[index], group) for index, group in groups.items()]

    def queue_key(self, queue: str) -> str:
        """The list of ``queue`` on partition 0 (each partition has its own)."""
        return self.partitions[0].queue_key(queue)

    # -- lifecycle -----------------------------------------------------------------------

    def flush(self) -> None:
        """Flush every partition and forget the partition count of the namespace."""
        for part in self.partitions:
            part.flush()
        self._redis.delete(f"{{{self.namespace}}}/{MARKER}")

    # -- client side ---------------------------------------------------------------------

    def enqueue_jobs(self, jobs: Sequence[Job], from_failure: bool = False) -> None:
        groups = self._by_partition(jobs, self.holder if from_failure else self.home)
        if len(groups) > 1:  # all or none: every payload serializes before any is stored
            for job in jobs:
                job_codec.encode(job)
        for part, group in groups:
            part.enqueue_jobs(group, from_failure)

    def push_raw(self, queue: str, payload: str | bytes) -> None:
        """On partition 0: a raw payload (tests, tooling) has no routing key."""
        self.partitions[0].push_raw(queue, payload)

    # -- worker side ---------------------------------------------------------------------

    def _turn(self) -> list[_Partition]:
        """The partitions in the order of this fetch: from the next one in turn."""
        start = self._next_turn() % self.partition_count
        return self.partitions[start:] + self.partitions[:start]

    def get_jobs_from_queue(self, queue: str | Sequence[str], max_jobs: int) -> list[Job]:
        queues = normalize_queues(queue)
        max_jobs = min(max_jobs, self.max_fetch_size)
        if max_jobs <= 0:
            return []
        return self._gather(
            self._turn(), lambda part, room: part.get_jobs_from_queue(queues, room), max_jobs
        )

    def unsettled_jobs(self) -> list[Job]:
        return self._gather(self.partitions, lambda part, _: part.unsettled_jobs())

    def _gather(
        self,
        parts: Sequence[_Partition],
        take: Callable[[_Partition, int], list[Job]],
        max_jobs: int | None = None,
    ) -> list[Job]:
        """The jobs ``take`` gets from ``parts`` in turn, until ``max_jobs``. A partition
        that cannot be reached is passed by: the jobs the others gave are returned (they
        run under this worker now), and its error is raised only when none came (that
        partition keeps its fetch id, so a lost reply is delivered by a later call)."""
        jobs: list[Job] = []
        failure: Exception | None = None
        for part in parts:
            room = max_jobs - len(jobs) if max_jobs is not None else 0
            try:
                jobs += take(part, room)
            except self.connection_errors as exc:
                failure = failure or exc
            if max_jobs is not None and len(jobs) >= max_jobs:
                break
        if failure is not None and not jobs:
            raise failure
        return jobs

    def remove_job_from_running(self, job: Job) -> None:
        self.remove_jobs_from_running([job])

    def remove_jobs_from_running(self, jobs: Sequence[Job]) -> None:
        """Each job on the partition its ``attempt`` names; a job without one (built by
        hand) on every partition, as its home may not be where it runs (``push_raw``, a
        limited task sent by a producer that knew the limit)."""
        known = [job for job in jobs if job.attempt]
        for part, group in self._by_partition(known, self.holder):
            part.remove_jobs_from_running(group)
        unknown = [job for job in jobs if not job.attempt]
        for part in self.partitions if unknown else ():
            part.remove_jobs_from_running(unknown)

    def return_jobs(self, jobs: Sequence[Job]) -> None:
        for part, group in self._by_partition(jobs, self.holder):
            part.return_jobs(group)

    def dead_letter(self, job: Job, reason: str) -> None:
        self.holder(job).dead_letter(job, reason)

    def move_future_jobs(self) -> int:
        return sum(part.move_future_jobs() for part in self.partitions)

    def next_future_job_delta(self) -> float | None:
        deltas = [part.next_future_job_delta() for part in self.partitions]
        known = [delta for delta in deltas if delta is not None]
        return min(known) if known else None

    def _task_home(self, task: Task) -> _Partition:
        return self.partitions[partition_of(task.name, self.partition_count)]

    def register_periodic_tasks(self, tasks: Iterable[Task]) -> None:
        """Each task on the partition of its name: one run per period across workers."""
        for part, group in self._by_partition(tasks, self._task_home):
            part.register_periodic_tasks(group)

    def set_concurrency_keys(self, tasks: Iterable[Task]) -> None:
        """The limits on every partition; jobs of a limited task go to its name's."""
        tasks = list(tasks)
        limited = (t.name for t in tasks if t.max_concurrency is not None or t.rate_limit)
        self._limited = frozenset(limited)
        for part in self.partitions:
            part.set_concurrency_keys(tasks)

    def is_queue_empty(self, queue: str) -> bool:
        return all(part.is_queue_empty(queue) for part in self.partitions)

    # -- worker liveness: on every partition, so each one recovers as one namespace ------

    def workers(self) -> list[WorkerInfo]:
        return self.partitions[0].workers()

    def register_worker(self, info: WorkerInfo) -> None:
        for part in self.partitions:
            part.register_worker(info)

    def heartbeat(self) -> None:
        replies = [part.heartbeat_reply() for part in self.partitions]
        if 2 in replies:
            logger.warning(
                "Worker %s was declared dead (no heartbeat for too long) and registered "
                "again; its running jobs may have been recovered by other workers",
                self.worker_id,
            )

    def deregister_worker(self) -> None:
        for part in self.partitions:
            part.deregister_worker()

    def recover_dead_workers(self, threshold: float) -> list[Job]:
        return [job for part in self.partitions for job in part.recover_dead_workers(threshold)]

    # -- dead letters --------------------------------------------------------------------

    def list_dead_letters(self) -> list[DeadLetter]:
        lists = [part.list_dead_letters() for part in self.partitions]
        return list(heapq.merge(*lists, key=lambda letter: letter.failed_at))

    def retry_dead_letters(self, ids: Iterable[str] | None = None) -> int:
        wanted = None if ids is None else list(ids)
        return sum(part.retry_dead_letters(wanted) for part in self.partitions)

    def purge_dead_letters(self, ids: Iterable[str] | None = None) -> int:
        wanted = None if ids is None else list(ids)
        return sum(part.purge_dead_letters(wanted) for part in self.partitions)

    def dead_letter_count(self) -> int:
        return sum(part.dead_letter_count() for part in self.partitions)

    # -- inspection: merged over the partitions -------------------------------------------

    def queue_lengths(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for part in self.partitions:
            total.update(part.queue_lengths())
        return dict(sorted(total.items()))

    def scheduled_jobs(self) -> list[Job]:
        lists = [part.scheduled_jobs() for part in self.partitions]
        return list(heapq.merge(*lists, key=_due))

    def scheduled_counts(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for part in self.partitions:
            total.update(part.scheduled_counts())
        return dict(total)

    def scheduled_count(self) -> int:
        return sum(part.scheduled_count() for part in self.partitions)

    def scheduled_page(self, offset: int = 0, limit: int = 50) -> tuple[list[Job], int]:
        """Each partition's first ``offset + limit`` jobs, merged by due time."""
        pages = [part.scheduled_page(0, offset + limit) for part in self.partitions]
        merged = heapq.merge(*(jobs for jobs, _ in pages), key=_due)
        return _page(merged, offset, limit), sum(total for _, total in pages)

    def queue_jobs(self, queue: str, offset: int = 0, limit: int = 50) -> list[Job]:
        """Each partition's first ``offset + limit`` jobs, merged by due time (each
        partition's own order kept)."""
        lists = [part.queue_jobs(queue, 0, offset + limit) for part in self.partitions]
        return _page(heapq.merge(*lists, key=_due), offset, limit)

    def running_jobs(self) -> dict[str, list[Job]]:
        merged: dict[str, list[Job]] = {}
        for part in self.partitions:
            for worker, jobs in part.running_jobs().items():
                merged.setdefault(worker, []).extend(jobs)
        return merged

    def running_since(self) -> dict[str, float]:
        return {i: at for part in self.partitions for i, at in part.running_since().items()}

    def inspect_periodic_tasks(self) -> list[tuple[float, str]]:
        return sorted(entry for part in self.partitions for entry in part.inspect_periodic_tasks())

    # -- history: each record on the partition of its job id ------------------------------

    def _record_home(self, job_id: str) -> _Partition:
        return self.partitions[partition_of(job_id, self.partition_count)]

    def record_history(
        self, records: Sequence[HistoryRecord], retention: float, max_records: int
    ) -> None:
        """``max_records`` shared evenly: each partition keeps its part of the records."""
        share = math.ceil(max_records / self.partition_count)
        for part, group in self._by_partition(records, lambda r: self._record_home(r.id)):
            part.record_history(group, retention, share)

    def history(self, offset: int = 0, limit: int = 50) -> list[HistoryRecord]:
        lists = [part.history(0, offset + limit) for part in self.partitions]
        merged = heapq.merge(*lists, key=lambda record: -record.finished_at)
        return _page(merged, offset, limit)

    def history_record(self, job_id: str) -> HistoryRecord | None:
        return self._record_home(job_id).history_record(job_id)

    def finished_counts(self, minutes: int) -> dict[str, list[int]]:
        total: dict[str, list[int]] = {}
        for part in self.partitions:
            for queue, counts in part.finished_counts(minutes).items():
                known = total.setdefault(queue, [0] * len(counts))
                total[queue] = [a + b for a, b in zip(known, counts, strict=True)]
        return total


def _due(job: Job) -> float:
    return job.at_timestamp


def _page(items: Iterator[T], offset: int, limit: int) -> list[T]:
    return list(itertools.islice(items, offset, offset + limit))
