"""The engine: tasks, namespace and scheduling; ``start_workers`` runs a worker object.

The worker side (the arbiter, the result notifier, the worker threads and the thread
model of a worker process) lives in ``spinach.worker_process``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import const, signals
from .brokers.base import Broker, normalize_queues
from .call import Call
from .forks import reset_after_fork
from .history import HistorySettings
from .job import Job, to_timestamp
from .task import Batch, Task, TaskRef, Tasks, validate_queue
from .worker_process import EXIT_INTERRUPTED as EXIT_INTERRUPTED  # re-exported
from .worker_process import RunOptions, Tunables, Worker
from .workers import ThreadWorkers, Workers
from .workers.prefetch import PrefetchSettings

if TYPE_CHECKING:
    from .contrib.prometheus import MetricsServer


class Engine:
    """Spinach engine coordinating a broker with workers.

    It runs in two modes: as a client it schedules jobs synchronously; as a worker
    (``start_workers``) it builds a ``spinach.worker_process.Worker`` that executes them
    with the threads described in that package's docstring. Engines sharing one broker
    storage must use different ``namespace`` values to stay isolated (jobs, periodic tasks,
    notifications and signals alike).
    """

    #: Seconds a stopping worker keeps retrying to report outcomes to an unreachable broker
    #: before giving up; jobs not reported are then recovered as a dead worker's. Longer
    #: rides out a longer outage, shorter makes shutdown prompt.
    shutdown_report_timeout = 30.0

    #: Most job outcomes the result notifier reports in one round trip. Higher keeps up
    #: with more jobs per second; each batch is one script run that blocks Redis meanwhile.
    report_batch_size = 100

    #: Seconds the result notifier waits for more outcomes to report in the same round trip
    #: while other jobs run. Longer makes fewer, larger reports under load; each report is
    #: later by as much (a job running alone is reported at once).
    report_gather_delay = 0.002

    #: Seconds between two moves of due future jobs while the arbiter is busy fetching
    #: (an idle arbiter moves them as soon as they are due). Lower moves them sooner
    #: behind a backlog, at the cost of a round trip per check.
    future_check_interval = 0.05

    #: The history of finished jobs the workers keep (``spinach.history``): whether, how
    #: long, how many, and the log lines of each job. Each field says its trade-off;
    #: ``HistorySettings(enabled=False)`` records nothing, ``capture_logs=False`` no lines.
    history = HistorySettings()

    #: Jobs a thread pool fetches beyond its threads while its jobs are short
    #: (``spinach.workers.prefetch``): fewer, larger fetches and no thread waiting for one,
    #: against a held job waiting about one short job here. ``PrefetchSettings(limit=0)``
    #: fetches only for free threads.
    prefetch = PrefetchSettings()

    def __init__(self, broker: Broker, namespace: str = const.DEFAULT_NAMESPACE):
        self._broker = broker
        self._tasks = Tasks()
        self._state_lock = threading.Lock()
        self._worker: Worker | None = None  # the current (or last) run of start_workers
        self.namespace = namespace
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: a parent's thread may have held the lock at the fork."""
        self._state_lock = threading.Lock()

    @property
    def namespace(self) -> str:
        """Namespace the engine uses; it can be changed while no worker runs."""
        return self._namespace

    @namespace.setter
    def namespace(self, namespace: str) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"a namespace must be a non-empty string, not {namespace!r}")
        with self._state_lock:
            if self.running:
                raise RuntimeError("the namespace cannot change while workers run")
            self._broker.set_namespace(namespace)  # first: it may refuse the name
            self._namespace = namespace

    @property
    def broker(self) -> Broker:
        """The broker the engine schedules to and fetches from."""
        return self._broker

    @property
    def running(self) -> bool:
        """Whether workers run (from ``start_workers`` until their stop begins)."""
        worker = self._worker
        return worker is not None and worker.running

    @property
    def worker(self) -> Worker | None:
        """The worker object of the current (or last) ``start_workers``: its ``arbiter``,
        ``notifier``, ``pool`` (the worker threads) and ``subscriber`` threads."""
        return self._worker

    @property
    def tasks(self) -> dict[str, Task]:
        """Tasks attached to the engine, by name."""
        return self._tasks.tasks

    # -- tasks ---------------------------------------------------------------------

    def attach_tasks(self, tasks: Tasks) -> None:
        """Attach a set of tasks: they can then be scheduled and executed.

        A registry can be attached to several engines (an app factory makes one per app):
        each runs its tasks in its own namespace, and scheduling through the registry goes
        to the engine attached last, as in upstream Spinach (which logs a warning).
        """
        if tasks is self._tasks:
            return
        self._tasks.update(tasks)
        tasks._attach(self)

    def task(self, func: Callable | None = None, **options: Any) -> Callable:
        """Decorator registering a task directly on the engine; options as ``Tasks.task``."""
        return self._tasks.task(func, **options)

    # -- client mode ---------------------------------------------------------------

    def schedule(self, task: TaskRef, *args: Any, **kwargs: Any) -> Job:
        """Schedule a job to be executed as soon as possible."""
        return self.schedule_jobs([self.build_job(task, None, args, kwargs)])[0]

    def schedule_at(self, task: TaskRef, at: datetime, *args: Any, **kwargs: Any) -> Job:
        """Schedule a job at ``at``; a naive datetime is taken as UTC."""
        if not isinstance(at, datetime):
            raise TypeError(f"'at' must be a datetime, not {type(at).__name__}")
        return self.schedule_jobs([self.build_job(task, at, args, kwargs)])[0]

    def schedule_batch(self, batch: Batch) -> list[Job]:
        """Schedule every job of ``batch`` in one round trip: all of them or none."""
        jobs = [self.build_job(*job) for job in batch.jobs_to_create]
        return self.schedule_jobs(jobs) if jobs else []

    def execute(self, task: TaskRef, *args: Any, **kwargs: Any) -> Any:
        """Run a task now, in this thread, and return its value (no broker involved)."""
        task = self._tasks.get(task)
        task.check_arguments(args, kwargs)
        if task.is_coroutine:
            return asyncio.run(task.func(*args, **kwargs))
        return task.func(*args, **kwargs)

    def build_job(
        self,
        task: TaskRef,
        at: datetime | None = None,
        args: tuple = (),
        kwargs: dict | None = None,
        *,
        id: str | None = None,
        queue: str | None = None,
        max_retries: int | None = None,
        meta: dict | None = None,
    ) -> Job:
        """A job of ``task`` with its arguments checked, ready for ``schedule_jobs``.

        The keyword options override the task's settings for this job only (extensions
        such as the Celery facade use them).
        """
        overrides: dict[str, Any] = {}
        if isinstance(task, Call):  # per-call options (spinach.call)
            overrides = task.overrides()
            at = at if at is not None else task.due(self._broker.now())
            task = task.task
        task = self._tasks.get(task)
        kwargs = kwargs or {}
        task.check_arguments(args, kwargs)
        for name, value in (("queue", queue), ("max_retries", max_retries)):
            if value is not None:
                overrides[name] = value
        if overrides.get("queue") is not None:
            validate_queue(overrides["queue"])
        at_timestamp = self._broker.now() if at is None else to_timestamp(at)
        job = task.new_job(at_timestamp, args, kwargs, id=id, meta=meta, **overrides)
        return job

    def schedule_jobs(self, jobs: list[Job]) -> list[Job]:
        """Enqueue built jobs in one round trip, all or none.

        Sends ``before_schedule`` then ``after_schedule`` (with the error, if any).
        """
        signals.before_schedule.send(self._namespace, jobs=jobs)
        try:
            self._broker.enqueue_jobs(jobs)
        except BaseException as exc:
            signals.after_schedule.send(self._namespace, jobs=jobs, err=exc)
            raise
        signals.after_schedule.send(self._namespace, jobs=jobs, err=None)
        return jobs

    # -- worker mode ---------------------------------------------------------------

    def serve_metrics(
        self, port: int, addr: str = "0.0.0.0", *, broker: bool = False
    ) -> MetricsServer:
        """Count this engine's jobs and serve them to Prometheus at ``/metrics`` on ``port``
        (0: a free one, read back as ``.port``); ``broker`` adds the broker-wide gauges.
        Needs the ``prometheus`` extra. ``close()`` the returned server to stop."""
        from .contrib.prometheus import serve

        return serve(self, port, addr, broker=broker)

    def start_workers(
        self,
        number: int = const.DEFAULT_WORKER_NUMBER,
        queue: str | Sequence[str] = const.DEFAULT_QUEUE,
        block: bool = True,
        stop_when_queue_empty: bool = False,
        workers_class: type[Workers] = ThreadWorkers,
    ) -> None:
        """Start the worker threads consuming ``queue`` (a name or a list, in priority order).

        With ``block`` the calling thread waits until SIGTERM, SIGINT or ``stop_workers``,
        then shuts down gracefully. ``stop_when_queue_empty`` ends the workers once the
        queues are empty and nothing runs (jobs due in the future are not waited for).
        The threads are those of ``spinach.worker_process``.
        """
        with self._state_lock:
            if self.running:
                raise RuntimeError(f"the workers of namespace '{self.namespace}' already run")
            options = RunOptions(number, normalize_queues(queue), stop_when_queue_empty,
                                 workers_class)  # fmt: skip
            tunables = Tunables(
                self.shutdown_report_timeout, self.report_batch_size,
                self.report_gather_delay, self.future_check_interval, self.history,
                self.prefetch,
            )  # fmt: skip
            self._worker = worker = Worker(
                self._broker, self._tasks, self.namespace, options, tunables
            )
        worker.run(block)

    def wait_until_stopped(self, timeout: float | None = None) -> bool:
        """Wait for the workers to stop (``stop_when_queue_empty`` with ``block=False``).

        Returns False if ``timeout`` seconds passed first.
        """
        worker = self._worker
        return True if worker is None else worker.stopped.wait(timeout)

    def stop_workers(self, _join_arbiter: bool = True) -> None:
        """Stop the workers gracefully and wait for every thread to terminate.

        Called by a task, it starts the stop in a thread of its own and returns at once:
        the calling job has to end (and be reported) before the workers can stop.
        """
        worker = self._worker
        if worker is not None:
            worker.stop(_join_arbiter)

    def consume(self, queues: Sequence[str]) -> None:
        """Change the queues the running workers fetch from (a remote ``add_consumer``)."""
        worker = self._worker
        if worker is None:
            raise RuntimeError(f"the workers of namespace '{self.namespace}' do not run")
        worker.consume(queues)

    def stop_fetching(self) -> None:
        """Fetch no more jobs; running ones go on, and ``stop_workers`` is still to be called.

        Called in a job's thread before the job ends (e.g. by a worker process replacing
        itself after a number of jobs), it takes effect before the job's worker is free
        again, so no job is fetched after it.
        """
        worker = self._worker
        if worker is not None:
            worker.stopping.set()

    # Compatibility with code that looked at the engine's internals before the worker
    # object existed (e.g. tests/fault_apps): prefer ``engine.worker``.

    @property
    def _arbiter(self) -> threading.Thread | None:
        return None if self._worker is None else self._worker.arbiter

    @property
    def _workers(self) -> Workers | None:
        return None if self._worker is None else self._worker.pool

    def __repr__(self) -> str:
        return f"<Engine namespace={self.namespace!r} broker={self._broker!r}>"
