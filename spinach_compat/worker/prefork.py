"""Celery's default pool, prefork: ``-c N`` child processes, each running one job at a time.

The worker process (the parent) sets up as Celery's does (``celeryd_init``, logging,
imports, ``worker_init``, the banner, ``celeryd_after_setup``), then runs the native
supervisor (``spinach.supervisor``) over N children, each ``python -m spinach_compat`` with
the same command line and ``CHILD_VARIABLE`` set: a facade worker of concurrency 1 that
sends ``worker_process_init`` and ``worker_process_shutdown``, and tells the parent through
its status pipe when it is ready, busy and idle. The parent sends ``worker_ready`` once every
child is ready, ``worker_shutting_down`` at the first SIGTERM/SIGINT (forwarded to the
children, which finish their job), and ``worker_shutdown`` once they all ended. With ``-B``
the parent runs the pool's one beat, in a thread (the children run none), as Celery's pool
has one beat beside its children.

As Celery's children, each is replaced when it dies, and also after the job that crosses
``--max-tasks-per-child`` or ``--max-memory-per-child``: the child stops taking jobs, stops
gracefully (that job's outcome is reported first: nothing is lost or run twice) and exits
with ``EXIT_RECYCLE``, which makes the supervisor start another at once. A child killed
mid-job (SIGKILL, the OOM killer) has its job recovered as any dead worker's, under the
delivery guarantee. ``--autoscale`` grows and shrinks the children (``.autoscale``).

Unlike Celery's, the children are fresh interpreters (Celery's ``--pool-start-method
spawn``), not forks: each imports the project and connects to the broker itself, so nothing
opened in the parent (connections, threads) is shared across a fork.
"""

from __future__ import annotations

import functools
import logging
import os
import resource
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spinach import signals as native_signals
from spinach.supervisor import BUSY, IDLE, READY, Supervisor, report_status

from .. import signals
from .node import start_prefork_node

if TYPE_CHECKING:
    from ..app.base import Celery
    from ..beat import BeatThread
    from ..events.worker import WorkerEvents
    from . import Worker

logger = logging.getLogger("spinach_compat.worker.prefork")

#: Exit status of a child that reached its limit (as billiard's ``EX_RECYCLE``).
EXIT_RECYCLE = 155

#: Environment variable set in the children: run as one child of a prefork pool.
CHILD_VARIABLE = "SPINACH_COMPAT_POOL_CHILD"


def is_child() -> bool:
    """Whether this process is a child of a prefork pool."""
    return os.environ.get(CHILD_VARIABLE) == "1"


def max_rss_kib() -> int:
    """This process's peak resident set size in KiB, as Celery measures it (``getrusage``:
    KiB on Linux, bytes on macOS and the BSDs)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" or "bsd" in sys.platform else peak


@dataclass(frozen=True)
class Limits:
    """``--max-tasks-per-child`` and ``--max-memory-per-child`` (KiB); None: no limit."""

    max_tasks: int | None = None
    max_memory_kib: int | None = None

    @classmethod
    def of(cls, app: Celery, max_tasks: int | None, max_memory: int | None) -> Limits:
        """The flags, else the ``worker_max_*_per_child`` settings (0 means no limit)."""
        conf = app.conf
        tasks = conf.get("worker_max_tasks_per_child") if max_tasks is None else max_tasks
        memory = conf.get("worker_max_memory_per_child") if max_memory is None else max_memory
        return cls(_limit(tasks), _limit(memory))


def _limit(value: Any) -> int | None:
    """A limit's value: None (or 0) means none."""
    return int(value) if value else None


class ChildLimiter:
    """In a child: after each job, whether it crossed a limit; if so, stop the worker."""

    def __init__(
        self, limits: Limits, stop: Callable[[], None], memory: Callable[[], int] = max_rss_kib
    ):
        self.limits = limits
        self.stop = stop
        self.memory = memory
        self.done = 0
        self.reached: str | None = None  #: the limit reached, once it is

    def job_finished(self) -> None:
        """Count a job; after the one crossing a limit, say so once and stop the worker."""
        self.done += 1
        if self.reached is not None:
            return
        self.reached = self._crossed()
        if self.reached is not None:
            logger.info("Child process %d %s: replacing it", os.getpid(), self.reached)
            self.stop()

    def _crossed(self) -> str | None:
        limits = self.limits
        if limits.max_tasks is not None and self.done >= limits.max_tasks:
            return f"ran {self.done} tasks (--max-tasks-per-child {limits.max_tasks})"
        if limits.max_memory_kib is not None:
            used = self.memory()
            if used > limits.max_memory_kib:
                return (
                    f"uses {used} KiB of resident memory "
                    f"(--max-memory-per-child {limits.max_memory_kib})"
                )
        return None


class ChildReporter:
    """In a child: job signals to the parent's status pipe, and the limits after each task.

    Connected (strongly) to the native ``job_started`` / ``job_finished`` signals of the
    app's namespace (busy, idle) and to ``task_postrun`` (the limits), all sent in the
    thread running the job; ``task_postrun`` comes after the task's result was stored and
    before its worker thread is free again, so a child that reached its limit fetches no
    other job (see ``Worker.stop_to_recycle``).
    """

    def __init__(self, namespace: str, limiter: ChildLimiter):
        self.namespace = namespace
        self.limiter = limiter

    def connect(self) -> None:
        native_signals.job_started.connect(self.started, sender=self.namespace, weak=False)
        native_signals.job_finished.connect(self.finished, sender=self.namespace, weak=False)
        signals.task_postrun.connect(self.task_ran, weak=False)

    def started(self, namespace: str, **kwargs: Any) -> None:
        report_status(BUSY)

    def task_ran(self, sender: Any = None, task: Any = None, **kwargs: Any) -> None:
        if not getattr(getattr(task, "request", None), "is_eager", False):
            self.limiter.job_finished()

    def finished(self, namespace: str, **kwargs: Any) -> None:
        if self.limiter.reached is None:
            report_status(IDLE)

    @staticmethod
    def ready() -> None:
        report_status(READY)


def child_command(argv: Sequence[str]) -> list[str]:
    """The command of one child: this command line again (``CHILD_VARIABLE`` tells it)."""
    return [sys.executable, "-m", "spinach_compat", *argv]


def run_parent(
    worker: Worker, argv: Sequence[str], cwd: str, scaler: Callable[..., Any] | None,
    processes: int, metrics_port: int | None = None, events: WorkerEvents | None = None,
    beat: BeatThread | None = None,
) -> int:  # fmt: skip
    """The parent's run: supervise the children; the exit status. With ``metrics_port``
    it serves the sum of the children's metrics (``spinach.contrib.prometheus``); ``events``
    (``-E``) sends the worker events, counting the jobs the children report; ``beat``
    (``-B``) is the pool's one beat, run here while the children run."""
    if beat is not None:
        beat.prepare()  # a bad scheduler stops the worker before any child starts
    if metrics_port is None:
        return _supervise(worker, argv, cwd, scaler, processes, events=events, beat=beat)
    from spinach.contrib.prometheus import MultiprocessMetrics

    with MultiprocessMetrics(metrics_port) as metrics:
        return _supervise(worker, argv, cwd, scaler, processes, metrics, events, beat)


def _supervise(
    worker: Worker, argv: Sequence[str], cwd: str, scaler: Callable[..., Any] | None,
    processes: int, metrics: Any = None, events: WorkerEvents | None = None,
    beat: BeatThread | None = None,
) -> int:  # fmt: skip
    """Run the supervisor of the children (writing their metrics for ``metrics``)."""

    def ready() -> None:
        logger.info("%s ready.", worker.hostname)
        signals.worker_ready.send(sender=worker)

    def stopping(name: str) -> None:
        logger.warning("%s received: warm shutdown (running tasks finish first)", name)
        signals.worker_shutting_down.send(sender=worker.hostname, sig=name, how="Warm", exitcode=0)

    supervisor = Supervisor(
        child_command(argv), processes, recycle_status=EXIT_RECYCLE, status_pipes=True,
        scaler=scaler, on_ready=ready, on_stop=stopping, cwd=cwd,
        environment={CHILD_VARIABLE: "1", **(metrics.environment if metrics else {})},
        on_exit=metrics.process_exited if metrics else None,
    )  # fmt: skip
    node, consumer = start_prefork_node(worker.app, worker.hostname, worker.queues, scaler)
    consumer.supervisor = supervisor  # the parent answers remote control for its children
    if events is not None:
        events.counts = functools.partial(_children_counts, supervisor)
        events.start()
    if beat is not None:
        beat.start()
    try:
        status = supervisor.run()
    finally:
        if beat is not None:
            beat.stop()
        node.stop()
        if events is not None:
            events.shutdown()
    signals.worker_shutdown.send(sender=worker)
    return status


def _children_counts(supervisor: Supervisor) -> tuple[int, int]:
    """``(active, processed)`` of the pool: children running a job, jobs they finished."""
    children = list(supervisor.children)
    return sum(c.busy for c in children), sum(c.finished for c in children)
