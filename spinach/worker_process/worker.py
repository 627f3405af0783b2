"""The worker object: one run of an engine's workers, from ``start_workers`` to its stop."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import stop_signals
from ..brokers.base import Broker, WorkerInfo, normalize_queues
from ..context import current_job
from ..history import HistoryRecorder, HistorySettings
from ..job import Job
from ..outage import Outage
from ..stop_signals import StopSignals
from ..task import Tasks
from ..workers import Workers
from ..workers.prefetch import Prefetch, PrefetchSettings
from .arbiter import Arbiter
from .broker_calls import BrokerCalls, Unreported
from .notifier import ResultNotifier

logger = logging.getLogger("spinach.engine")  # the name these records always had

#: Exit status of a worker process interrupted twice, as shells report a SIGINT death.
EXIT_INTERRUPTED = 130

#: Broker connections allowed beyond one per job running at once: the arbiter, notifier,
#: subscriber and the jobs' own calls. Higher costs only connections opened under load.
CONNECTION_HEADROOM = 50


@dataclass(frozen=True)
class Tunables:
    """The engine's tunables a run reads (each is documented on ``Engine``)."""

    shutdown_report_timeout: float
    report_batch_size: int
    report_gather_delay: float
    future_check_interval: float
    history: HistorySettings = field(default_factory=HistorySettings)
    prefetch: PrefetchSettings = field(default_factory=PrefetchSettings)


@dataclass(frozen=True)
class RunOptions:
    """What ``start_workers`` was asked for."""

    number: int
    queues: list[str]
    stop_when_queue_empty: bool
    workers_class: type[Workers]


class Worker:
    """One run of the workers of a namespace: it owns the threads of the package docstring
    (worker threads, arbiter, result notifier, broker subscriber) and their state.

    ``run`` starts them; with ``block`` it also waits, handling SIGTERM and SIGINT, until
    they stopped. ``stop`` stops them gracefully, once. A worker object is not reused: the
    engine builds one per ``start_workers``.
    """

    def __init__(
        self, broker: Broker, tasks: Tasks, namespace: str, options: RunOptions, tunables: Tunables
    ):
        self.broker = broker
        self.tasks = tasks
        self.namespace = namespace
        self.options = options
        self.tunables = tunables
        self.stopping = threading.Event()  # no more fetching: the stop began or is asked
        self.stopped = threading.Event()
        self.unreported = Unreported(self._on_reported)
        self.pool: Workers | None = None  # the worker threads, once started
        self.arbiter: Arbiter | None = None
        self.notifier: ResultNotifier | None = None
        self.subscriber: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._running = True  # until the stop begins
        self._block = False
        self._calls = BrokerCalls(self.stopping, tunables.shutdown_report_timeout)
        self._subscriber_stop = threading.Event()
        self._stop_signals: StopSignals | None = None  # while a blocking run waits
        self._stop_error: Exception | None = None
        self.history: HistoryRecorder | None = None  # once started, unless switched off

    @property
    def running(self) -> bool:
        """Whether the workers run (False once their stop began, or their start failed)."""
        return self._running

    # -- start ---------------------------------------------------------------------

    def run(self, block: bool) -> None:
        """Start the threads; with ``block``, wait until they stopped (see ``Engine``)."""
        self._block = block
        # In blocking mode the signals are caught before any thread starts: one arriving
        # while the workers start stops them gracefully once started, no KeyboardInterrupt.
        with stop_signals.caught() if block else contextlib.nullcontext() as catcher:
            self._stop_signals = catcher
            try:
                self._start()
            except BaseException:
                self._running = False
                self._stop_signals = None
                raise
            try:
                if block:
                    self._stop_when_asked(catcher)
            finally:
                self._stop_signals = None

    def _start(self) -> None:
        options, broker = self.options, self.broker
        self._prepare_broker()
        self.pool = pool = options.workers_class(
            options.number, self.namespace, clock=broker.now, on_job_done=self._on_job_done
        )
        self._start_history(pool)
        if pool.holds_jobs and self.tunables.prefetch.limit != 0:
            pool.prefetch = Prefetch(self.tunables.prefetch, options.number)
        self.arbiter = self._arbiter(pool)
        self.notifier = ResultNotifier(
            broker, pool, self._calls, self.unreported, namespace=self.namespace,
            batch_size=self.tunables.report_batch_size,
            gather_delay=self.tunables.report_gather_delay,
        )  # fmt: skip
        broker.on_notification = self.arbiter.on_notification  # fetches while it idles
        self.subscriber = self._thread(broker.run_subscriber, "subscriber", self._subscriber_stop)
        for thread in (self.notifier, self.subscriber, self.arbiter):  # arbiter last:
            thread.start()  # it may stop the workers at once, joining the other two
        logger.info(
            "Worker %s started: %d %s on queue(s) %s of namespace '%s'; tasks: %s",
            broker.worker_id, options.number, options.workers_class.__name__,
            ", ".join(options.queues), self.namespace,
            ", ".join(sorted(self.tasks.names)) or "none",
        )  # fmt: skip

    def _on_job_done(self) -> None:
        """A job ended, in its worker thread: wake the arbiter if it waits for a free
        worker (with a prefetch, for the held jobs to run low)."""
        arbiter, pool = self.arbiter, self.pool
        if arbiter is None or pool is None or (arbiter.wants_slot and pool.slots_to_fetch()):
            self.broker.notify_local()

    def _on_reported(self) -> None:
        """Jobs were reported to the broker, in the result notifier's thread: wake the
        arbiter only if it waits for that (to stop once the queues are empty and every job
        is reported). Otherwise a report changes nothing it acts on: a freed worker woke it
        already if it waited for one, and a freed concurrency slot notifies through the
        broker. Not waking it keeps its round off an idle worker's way to the next job."""
        if self.options.stop_when_queue_empty:
            self.broker.notify_local()

    def _start_history(self, pool: Workers) -> None:
        """Record finished jobs, with their log lines when captured (``spinach.history``)."""
        settings = self.tunables.history
        if not settings.enabled:
            return
        pool.history = self.history = HistoryRecorder(settings, self.broker.now)
        if self.history.logs is not None:
            self.history.logs.install()

    def consume(self, queues: Sequence[str]) -> None:
        """Fetch from ``queues`` from now on (in this order), and say so in the broker."""
        queues = normalize_queues(queues)
        self.options = dataclasses.replace(self.options, queues=queues)
        if self.arbiter is not None:  # it reads its list at each fetch: rebound, not changed
            self.arbiter.queues = queues
        pool = self.options.number
        self.broker.register_worker(WorkerInfo(id=self.broker.worker_id, queues=queues,
                                               threads=pool))  # fmt: skip
        self.broker.notify_local()

    def _arbiter(self, pool: Workers) -> Arbiter:
        return Arbiter(
            self.broker, self.tasks, pool, self.options.queues, namespace=self.namespace,
            stopping=self.stopping, calls=self._calls, unreported=self.unreported,
            future_check_interval=self.tunables.future_check_interval,
            on_empty=self._on_queues_empty if self.options.stop_when_queue_empty else None,
        )  # fmt: skip

    def _prepare_broker(self) -> None:
        broker = self.broker
        broker.start()
        broker.allow_connections(self.options.number + CONNECTION_HEADROOM)
        tasks = list(self.tasks)
        broker.set_concurrency_keys(tasks)  # without a limit: one set before is removed
        broker.register_periodic_tasks(tasks)  # all of them: see the contract
        info = WorkerInfo(
            id=broker.worker_id, queues=list(self.options.queues), threads=self.options.number
        )
        broker.register_worker(info)

    def _thread(self, target: Callable, role: str, *args: Any) -> threading.Thread:
        return threading.Thread(target=target, args=args, name=f"{self.namespace}-{role}")

    # -- waiting for the stop (the main thread of a blocking run) ------------------

    def _stop_when_asked(self, catcher: StopSignals | None) -> None:
        """Block until the workers stopped, stopping them on SIGTERM or SIGINT.

        The signals are handled here, in the main thread, and the graceful stop runs in a
        stopper thread meanwhile: a second signal during a graceful shutdown exits at once
        (status 130) without waiting for running jobs, which other workers then recover as
        a dead worker's. Outside the main thread no signal is caught.
        """
        if catcher is None:
            self.stopping.wait()
            self.stop()
            self.stopped.wait()  # stop may be running in another thread
            return
        received, stopper = 0, None
        while not self.stopped.is_set() and self._stop_error is None:
            for sig in catcher.wait():
                received += 1
                self._on_stop_signal(sig, again=received > 1)
            if stopper is None and self.stopping.is_set():  # a signal, or empty queues
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
        self.stopping.set()

    def _stop_in_background(self) -> None:
        """A stopper thread's work: ``stop``, then wake the main thread, even if the stop
        failed (the blocked ``run`` then raises the error)."""
        try:
            self.stop()
        except Exception as exc:
            logger.exception("Stopping the workers failed")
            self._stop_error = exc
        finally:
            self._wake_main_thread()

    def _on_queues_empty(self) -> None:
        """The arbiter found nothing left to do (``stop_when_queue_empty``)."""
        self.stopping.set()
        if self._block:  # the blocked caller of run stops them
            self._wake_main_thread()
        else:
            self._thread(self.stop, "stopper").start()

    def _wake_main_thread(self) -> None:
        catcher = self._stop_signals
        if catcher is not None:
            catcher.wake()

    # -- stop ----------------------------------------------------------------------

    def stop(self, join_arbiter: bool = True) -> None:
        """Stop gracefully and wait for every thread to end (see ``Engine.stop_workers``)."""
        if current_job() is not None:
            self._thread(self.stop, "stopper").start()
            return
        with self._state_lock:
            if not self._running:
                return
            self._running = False
        assert self.arbiter and self.pool and self.notifier and self.subscriber  # started
        self.stopping.set()
        self.broker.notify_local()
        if join_arbiter and threading.current_thread() is not self.arbiter:
            self.arbiter.join()
        self.arbiter.finish_turns()  # a fetch of the subscriber's is handed over by now
        self._give_back(self.pool.stop())
        self._give_back_unsettled()
        self.notifier.stop()
        if self.history is not None and self.history.logs is not None:
            self.history.logs.uninstall()
        self._calls.call("deregistering", Outage("shutdown"), self.broker.deregister_worker)
        self._subscriber_stop.set()
        self.subscriber.join()
        self.broker.on_notification = None
        self.broker.stop()
        logger.info("Worker %s stopped", self.broker.worker_id)
        self.stopped.set()
        self._wake_main_thread()

    def _give_back(self, jobs: list[Job], dispatched: bool = True) -> None:
        if not jobs:
            return
        logger.info("Giving back %d job(s) fetched but not started", len(jobs))
        self._calls.call("giving back jobs", Outage("shutdown"), self.broker.return_jobs, jobs)
        if dispatched:
            self.unreported.reported(len(jobs))

    def _give_back_unsettled(self) -> None:
        """Give back the jobs of a fetch whose reply an outage lost: the arbiter's next
        fetch would have delivered them, and the worker stops before it."""
        unsettled: list[Job] = []
        self._calls.call(
            "recovering a lost fetch", Outage("shutdown"),
            lambda: unsettled.extend(self.broker.unsettled_jobs()),
        )  # fmt: skip
        self._give_back(unsettled, dispatched=False)
