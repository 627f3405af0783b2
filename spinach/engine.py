"""The engine: what ties tasks, jobs, a broker and workers together.

Thread model of a worker process (``Engine.start_workers``)
-----------------------------------------------------------
- **Worker threads** (``ThreadWorkers``, or one event-loop thread with
  ``AsyncioWorkers``) only run task functions and advance each job's status (succeeded,
  failed, or waiting for a retry). They never talk to the broker.
- **The arbiter thread** talks to the broker for the workers: it moves due future jobs to
  their queues, fetches as many jobs as there are free workers, hands them over, heartbeats
  and recovers the jobs of dead worker processes, each on its own cadence. Idle, it sleeps
  until a broker notification, a finished job, the next future job or the next
  bookkeeping, whichever comes first.
- **The result notifier thread** reports each finished job to the broker (finished, failed,
  or to retry), in order, retrying through broker outages so no outcome is lost; while
  other jobs run, outcomes ending within ``report_gather_delay`` share one round trip.
- **The broker subscriber thread** listens to the broker's notifications (a job was
  enqueued) and wakes the arbiter, so an idle worker starts a new job within milliseconds.
- **The main thread** starts all of the above, then waits for SIGTERM or SIGINT (or
  ``stop_workers``) to shut down gracefully: stop fetching, let running jobs finish, report
  them, give back jobs fetched but not started, deregister. A stopper thread does that
  shutdown while the main thread keeps watching the signals (a second one exits at once).
  Signals are only noted by their handler and handled by the main thread: see
  ``spinach.stop_signals``.

So a worker process has at least five threads. Scheduling (client mode) spawns none.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from queue import Empty
from typing import Any

from . import const, signals, stop_signals
from .brokers.base import Broker, WorkerInfo, normalize_queues
from .context import current_job
from .exc import UnknownTask, UnserializableArgumentError, WorkerLostError
from .job import Job, JobStatus, to_timestamp
from .outage import Outage
from .stop_signals import StopSignals
from .task import Batch, Task, TaskRef, Tasks, validate_queue
from .workers import ThreadWorkers, Workers

logger = logging.getLogger("spinach.engine")

_STOP = None  # sentinel ending the result notifier
_ENDED = (JobStatus.SUCCEEDED, JobStatus.FAILED)  # reported by removing the job from running


class _Round(enum.Enum):
    """How an arbiter round ended, which says how long to wait before the next one."""

    MAY_HAVE_MORE = "fetched all it asked for: fetch again at once"
    DRAINED = "the queues had fewer jobs than free workers: wait for news or time"
    NO_FREE_WORKER = "every worker is busy: wait for one to finish"


#: Exit status of a worker process interrupted twice, as shells report a SIGINT death.
EXIT_INTERRUPTED = 130


class Engine:
    """Spinach engine coordinating a broker with workers.

    It runs in two modes: as a client it schedules jobs synchronously; as a worker
    (``start_workers``) it executes them with the threads described in this module's
    docstring. Engines sharing one broker storage must use different ``namespace`` values
    to stay isolated (jobs, periodic tasks, notifications and signals alike).
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

    def __init__(self, broker: Broker, namespace: str = const.DEFAULT_NAMESPACE):
        self._broker = broker
        self._tasks = Tasks()
        self._state_lock = threading.Lock()
        self._running = False
        self._must_stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()  # no worker runs yet
        self._stop_signals: StopSignals | None = None  # while a blocking start_workers runs
        self._stop_error: Exception | None = None
        self.namespace = namespace

    @property
    def namespace(self) -> str:
        """Namespace the engine uses; it can be changed while no worker runs."""
        return self._namespace

    @namespace.setter
    def namespace(self, namespace: str) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"a namespace must be a non-empty string, not {namespace!r}")
        with self._state_lock:
            if self._running:
                raise RuntimeError("the namespace cannot change while workers run")
            self._namespace = namespace
            self._broker.set_namespace(namespace)

    @property
    def broker(self) -> Broker:
        """The broker the engine schedules to and fetches from."""
        return self._broker

    @property
    def tasks(self) -> dict[str, Task]:
        """Tasks attached to the engine, by name."""
        return self._tasks.tasks

    # -- tasks ---------------------------------------------------------------------

    def attach_tasks(self, tasks: Tasks) -> None:
        """Attach a set of tasks: they can then be scheduled and executed."""
        if tasks is self._tasks:
            return
        tasks._attach(self)
        self._tasks.update(tasks)

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
        task = self._tasks.get(task)
        kwargs = kwargs or {}
        task.check_arguments(args, kwargs)
        if queue is not None:
            validate_queue(queue)
        at_timestamp = self._broker.now() if at is None else to_timestamp(at)
        job = task.new_job(at_timestamp, args, kwargs, id=id, meta=meta)
        if queue:
            job.queue = queue
        if max_retries is not None:
            job.max_retries = max_retries
        return job

    def schedule_jobs(self, jobs: list[Job]) -> list[Job]:
        """Enqueue built jobs in one round trip, all or none."""
        self._broker.enqueue_jobs(jobs)
        return jobs

    # -- worker mode ---------------------------------------------------------------

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
        """
        with self._state_lock:
            if self._running:
                raise RuntimeError(f"the workers of namespace '{self.namespace}' already run")
            self._running = True
        self._must_stop = threading.Event()
        self._stopped = threading.Event()
        self._stop_error = None
        # In blocking mode the signals are caught before any thread starts: one arriving
        # while the workers start stops them gracefully once started, no KeyboardInterrupt.
        with stop_signals.caught() if block else contextlib.nullcontext() as catcher:
            self._stop_signals = catcher
            try:
                queues = normalize_queues(queue)
                self._start(number, queues, block, stop_when_queue_empty, workers_class)
            except BaseException:
                self._running = False
                self._stop_signals = None
                raise
            try:
                if block:
                    self._stop_when_asked(catcher)
            finally:
                self._stop_signals = None

    def wait_until_stopped(self, timeout: float | None = None) -> bool:
        """Wait for the workers to stop (``stop_when_queue_empty`` with ``block=False``).

        Returns False if ``timeout`` seconds passed first.
        """
        return self._stopped.wait(timeout)

    def _start(
        self,
        number: int,
        queues: list[str],
        block: bool,
        stop_when_queue_empty: bool,
        workers_class: type[Workers],
    ) -> None:
        self._queues = queues
        self._stop_when_queue_empty = stop_when_queue_empty
        self._block = block
        self._prepare_broker(number)
        self._subscriber_stop = threading.Event()
        self._unreported = 0
        self._unreported_lock = threading.Lock()
        self._workers = workers_class(
            number, self.namespace, clock=self._broker.now, on_job_done=self._broker.notify_local
        )
        self._arbiter = self._thread(self._arbiter_loop, "arbiter")
        self._notifier = self._thread(self._notifier_loop, "result-notifier")
        self._subscriber = self._thread(
            self._broker.run_subscriber, "subscriber", self._subscriber_stop
        )
        for thread in (self._notifier, self._subscriber, self._arbiter):  # arbiter last:
            thread.start()  # it may stop the workers at once, joining the other two
        logger.info(
            "Worker %s started: %d %s on queue(s) %s of namespace '%s'; tasks: %s",
            self._broker.worker_id, number, workers_class.__name__, ", ".join(queues),
            self.namespace, ", ".join(sorted(self._tasks.names)) or "none",
        )  # fmt: skip

    def _prepare_broker(self, number: int) -> None:
        broker = self._broker
        broker.start()
        tasks = list(self._tasks)
        broker.set_concurrency_keys(tasks)  # without a limit: one set before is removed
        broker.register_periodic_tasks(tasks)  # all of them: see the contract
        broker.register_worker(
            WorkerInfo(id=broker.worker_id, queues=list(self._queues), threads=number)
        )
        now = broker.now()
        self._last_heartbeat = now  # registering counts as one
        self._next_heartbeat = now + broker.heartbeat_interval
        self._next_dead_check = now
        self._future_check_at = 0.0
        self._last_future_move = 0.0

    def _thread(self, target: Callable, role: str, *args: Any) -> threading.Thread:
        return threading.Thread(target=target, args=args, name=f"{self.namespace}-{role}")

    def _stop_when_asked(self, catcher: StopSignals | None) -> None:
        """Block until the workers stopped, stopping them on SIGTERM or SIGINT.

        The signals are handled here, in the main thread, and the graceful stop runs in a
        stopper thread meanwhile: a second signal during a graceful shutdown exits at once
        (status 130) without waiting for running jobs, which other workers then recover as
        a dead worker's. Outside the main thread no signal is caught.
        """
        if catcher is None:
            self._must_stop.wait()
            self.stop_workers()
            self._stopped.wait()  # stop_workers may be running in another thread
            return
        received, stopper = 0, None
        while not self._stopped.is_set() and self._stop_error is None:
            for sig in catcher.wait():
                received += 1
                self._on_stop_signal(sig, again=received > 1)
            if stopper is None and self._must_stop.is_set():  # a signal, or empty queues
                stopper = self._thread(self._stop_in_background, "stopper")
                stopper.start()
        if stopper is not None:
            stopper.join()  # it only has to wake this thread still
        if self._stop_error is not None:
            raise self._stop_error

    def _on_stop_signal(self, sig: signal.Signals, again: bool) -> None:
        """A stop signal, in the main thread: an exit if ``again``, else a graceful stop."""
        if again:
            logger.warning(
                "Received %s again: exiting at once without waiting for running jobs; "
                "they will be recovered as a dead worker's", sig.name,
            )  # fmt: skip
            logging.shutdown()
            os._exit(EXIT_INTERRUPTED)
        logger.info(
            "Received %s: stopping gracefully (running jobs finish first; "
            "send it again to exit at once)", sig.name,
        )  # fmt: skip
        self._must_stop.set()

    def _stop_in_background(self) -> None:
        """A stopper thread's work: ``stop_workers``, then wake the main thread, even if the
        stop failed (the blocked ``start_workers`` then raises the error)."""
        try:
            self.stop_workers()
        except Exception as exc:
            logger.exception("Stopping the workers failed")
            self._stop_error = exc
        finally:
            self._wake_main_thread()

    def _wake_main_thread(self) -> None:
        catcher = self._stop_signals
        if catcher is not None:
            catcher.wake()

    def stop_workers(self, _join_arbiter: bool = True) -> None:
        """Stop the workers gracefully and wait for every thread to terminate.

        Called by a task, it starts the stop in a thread of its own and returns at once:
        the calling job has to end (and be reported) before the workers can stop.
        """
        if current_job() is not None:
            self._thread(self.stop_workers, "stopper").start()
            return
        with self._state_lock:
            if not self._running:
                return
            self._running = False
        self._must_stop.set()
        self._broker.notify_local()
        if _join_arbiter and threading.current_thread() is not self._arbiter:
            self._arbiter.join()
        self._give_back(self._workers.stop())
        self._give_back_unsettled()
        self._workers.out_queue.put(_STOP)
        self._notifier.join()
        self._call_broker("deregistering", Outage("shutdown"), self._broker.deregister_worker)
        self._subscriber_stop.set()
        self._subscriber.join()
        self._broker.stop()
        logger.info("Worker %s stopped", self._broker.worker_id)
        self._stopped.set()
        self._wake_main_thread()

    def _give_back(self, jobs: list[Job], dispatched: bool = True) -> None:
        if not jobs:
            return
        logger.info("Giving back %d job(s) fetched but not started", len(jobs))
        self._call_broker("giving back jobs", Outage("shutdown"), self._broker.return_jobs, jobs)
        if dispatched:
            self._count_reported(len(jobs))

    def _give_back_unsettled(self) -> None:
        """Give back the jobs of a fetch whose reply an outage lost: the arbiter's next
        fetch would have delivered them, and the worker stops before it."""
        unsettled: list[Job] = []
        self._call_broker(
            "recovering a lost fetch", Outage("shutdown"),
            lambda: unsettled.extend(self._broker.unsettled_jobs()),
        )  # fmt: skip
        self._give_back(unsettled, dispatched=False)

    # -- arbiter -------------------------------------------------------------------

    def _arbiter_loop(self) -> None:
        """Fetch and dispatch until told to stop; an outage only pauses it, never ends it."""
        outage = Outage("arbiter")
        while not self._must_stop.is_set():
            try:
                done = self._arbiter_step()
                outage.succeeded()
            except Exception as exc:
                # a stop, or the subscriber back in touch with the broker, cut the wait short
                self._broker.wait_for_event(outage.failed(exc))
                continue
            if done:
                break

    def _arbiter_step(self) -> bool:
        """One round, then the wait for more work; whether the workers should stop now."""
        outcome = self._arbiter_round()
        if self._must_stop.is_set():
            return True
        if self._stop_when_queue_empty and self._is_idle():
            logger.info("Queue(s) %s empty and nothing running: stopping", ", ".join(self._queues))
            self._must_stop.set()
            if self._block:  # the blocked caller of start_workers stops them
                self._wake_main_thread()
            else:
                self._thread(self.stop_workers, "stopper").start()
            return True
        if outcome is _Round.DRAINED:
            timeout, self._future_check_at = self._idle_wait()
            self._broker.wait_for_event(timeout)
        else:  # busy: move due jobs at least every future_check_interval
            self._future_check_at = min(
                self._future_check_at, self._last_future_move + self.future_check_interval
            )
            if outcome is _Round.NO_FREE_WORKER:  # until a job ends
                self._broker.wait_for_event(self._idle_timeout())
        return False

    def _arbiter_round(self) -> _Round:
        """One round of bookkeeping and fetching."""
        self._bookkeeping()
        self._move_future_jobs()
        slots = self._workers.available_slots
        if slots <= 0:
            return _Round.NO_FREE_WORKER
        jobs = self._broker.get_jobs_from_queue(self._queues, slots)
        unknown = [failure for job in jobs if (failure := self._dispatch(job))]
        for job, reason in unknown:
            self._dead_letter(job, reason)
        return _Round.MAY_HAVE_MORE if len(jobs) == slots else _Round.DRAINED

    def _move_future_jobs(self) -> None:
        """Move due future jobs to their queues: when the next one is due, and every
        ``future_check_interval`` while busy (not every round: it costs a round trip).

        An idle arbiter learns when the next future job is due before it waits; a job
        scheduled meanwhile notifies it, and the next idle wait learns of it in turn.
        """
        now = self._broker.now()
        if now >= self._future_check_at:
            self._broker.move_future_jobs()
            self._last_future_move = now
            self._future_check_at = now + self.future_check_interval

    def _dispatch(self, job: Job) -> tuple[Job, str] | None:
        """Hand ``job`` to the workers; ``(job, reason)`` if it cannot run here."""
        try:
            task = self._tasks.get(job.task_name)
        except UnknownTask as exc:
            return job, str(exc)
        job.task_func = task.func
        with self._unreported_lock:
            self._unreported += 1
        self._workers.submit_job(job)
        return None

    def _dead_letter(self, job: Job, reason: str) -> None:
        """Set aside a fetched job that cannot run, riding out an outage to do so."""
        logger.error("Dead-lettering %s from queue '%s': %s", job, job.queue, reason)
        signals.job_dead_lettered.send(self.namespace, job=job, reason=reason)
        self._call_broker(
            f"dead-lettering {job}", Outage("arbiter"), self._broker.dead_letter, job, reason
        )

    def _bookkeeping(self) -> None:
        broker = self._broker
        now = broker.now()
        if now >= self._next_heartbeat:
            broker.heartbeat()
            self._heartbeat_sent(broker.now())
            self._next_heartbeat = now + broker.heartbeat_interval
        if now >= self._next_dead_check:
            self._report_recovered(broker.recover_dead_workers(broker.dead_worker_threshold))
            self._next_dead_check = now + broker.dead_worker_check_interval

    def _heartbeat_sent(self, at: float) -> None:
        """After a long silence of this worker (a broker outage or stall, this process
        frozen), wait a full threshold before judging the others: silenced alike, their
        last heartbeats are as old as ours, and live workers would be declared dead."""
        broker = self._broker
        silence = at - self._last_heartbeat
        self._last_heartbeat = at
        if silence > (broker.dead_worker_threshold + broker.heartbeat_interval) / 2:
            self._next_dead_check = max(self._next_dead_check, at + broker.dead_worker_threshold)

    def _report_recovered(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.status is JobStatus.FAILED:
                logger.error("%s was running on a dead worker: failed (at-most-once)", job)
                err = WorkerLostError(f"the worker running {job} died")
                signals.job_failed.send(self.namespace, job=job, err=err)
            else:
                logger.warning(
                    "%s was running on a dead worker: queued again, retry %d of %d",
                    job, job.retries, job.max_retries,
                )  # fmt: skip

    def _idle_timeout(self) -> float:
        """How long the arbiter may wait: until the next bookkeeping or the idle poll."""
        broker = self._broker
        now = broker.now()
        candidates = [
            broker.idle_poll_interval,
            self._next_heartbeat - now,
            self._next_dead_check - now,
        ]
        return max(0.0, min(candidates))

    def _idle_wait(self) -> tuple[float, float]:
        """How long an idle arbiter may wait, and when the next future job is due."""
        now = self._broker.now()
        delta = self._broker.next_future_job_delta()
        if delta is None:
            return self._idle_timeout(), float("inf")
        return max(0.0, min(self._idle_timeout(), delta)), now + delta

    def _is_idle(self) -> bool:
        with self._unreported_lock:
            if self._unreported:
                return False
        return all(self._broker.is_queue_empty(queue) for queue in self._queues)

    # -- result notifier -----------------------------------------------------------

    def _notifier_loop(self) -> None:
        outage = Outage("result notifier")
        while True:
            batch = self._next_reports()
            stopping = batch[-1] is _STOP
            jobs = batch[:-1] if stopping else batch
            if jobs:
                self._report(jobs, outage)
            if stopping:
                return

    def _next_reports(self) -> list[Job | None]:
        """Wait for one finished job, then take those already waiting, up to a batch; while
        other jobs run, wait ``report_gather_delay`` for them once."""
        out_queue = self._workers.out_queue
        batch = self._drained_into([out_queue.get()])
        if self._batch_open(batch) and self._jobs_running():
            try:
                batch.append(out_queue.get(timeout=self.report_gather_delay))
            except Empty:
                return batch
            self._drained_into(batch)
        return batch

    def _drained_into(self, batch: list[Job | None]) -> list[Job | None]:
        """``batch`` with the finished jobs already waiting added, up to a batch."""
        out_queue = self._workers.out_queue
        while self._batch_open(batch):
            try:
                batch.append(out_queue.get_nowait())
            except Empty:
                break
        return batch

    def _batch_open(self, batch: list[Job | None]) -> bool:
        return batch[-1] is not _STOP and len(batch) < self.report_batch_size

    def _jobs_running(self) -> bool:
        return self._workers.available_slots < self._workers.number

    def _report(self, jobs: list[Job], outage: Outage) -> None:
        """Tell the broker how ``jobs`` ended, retrying through outages."""
        for job in jobs:
            if job.status not in _ENDED:
                self._fail_if_unserializable(job)
        ended = [job for job in jobs if job.status in _ENDED]
        retried = [job for job in jobs if job.status not in _ENDED]
        if ended:
            self._call_broker(
                f"reporting {len(ended)} job(s)", outage, self._broker.remove_jobs_from_running,
                ended,
            )  # fmt: skip
        if retried:
            self._call_broker(
                f"retrying {len(retried)} job(s)", outage, self._broker.enqueue_jobs, retried, True
            )
        self._count_reported(len(jobs))

    def _fail_if_unserializable(self, job: Job) -> None:
        """Fail a job to retry whose payload cannot be built (its task put a value JSON
        cannot carry in its arguments or meta): the broker would refuse it at every try,
        holding up every outcome behind it."""
        try:
            job.serialize()
        except UnserializableArgumentError as exc:
            logger.error("%s cannot be retried, failing it: %s", job, exc)
            job.status = JobStatus.FAILED
            signals.job_failed.send(self.namespace, job=job, err=exc)

    def _count_reported(self, count: int) -> None:
        with self._unreported_lock:
            self._unreported -= count
        self._broker.notify_local()

    def _call_broker(self, what: str, outage: Outage, call: Callable, *args: Any) -> bool:
        """Call the broker until it answers, waiting with backoff through an outage.

        Once the workers are stopping, it gives up after ``shutdown_report_timeout``: what
        it failed to report is then recovered as a dead worker's job.
        """
        deadline = None
        while True:
            try:
                call(*args)
                outage.succeeded()
                return True
            except Exception as exc:
                delay = outage.failed(exc)
            if self._must_stop.is_set():
                deadline = deadline or time.monotonic() + self.shutdown_report_timeout
                if time.monotonic() >= deadline:
                    logger.error("Gave up %s: the broker stayed unreachable", what)
                    return False
            time.sleep(delay)

    def __repr__(self) -> str:
        return f"<Engine namespace={self.namespace!r} broker={self._broker!r}>"
