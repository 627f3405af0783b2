"""The result notifier thread: reports each finished job to the broker, in order."""

from __future__ import annotations

import logging
import threading
import time
from queue import Empty

from .. import signals
from ..brokers.base import Broker
from ..exc import UnserializableArgumentError
from ..history import HistoryRecord
from ..job import Job, JobStatus
from ..outage import Outage
from ..workers import Workers
from .broker_calls import BrokerCalls, Unreported

logger = logging.getLogger("spinach.engine")  # the name these records always had

STOP = None  # sentinel ending the result notifier, put in the workers' out queue
_ENDED = (JobStatus.SUCCEEDED, JobStatus.FAILED)  # reported by removing the job from running


class ResultNotifier(threading.Thread):
    """Takes the jobs the worker threads finished and tells the broker how they ended
    (finished, failed, or to retry), retrying through outages so no outcome is lost.

    While other jobs run, outcomes ending within ``gather_delay`` share one round trip of
    at most ``batch_size`` jobs. It ends on ``STOP``, after reporting what came before.
    """

    def __init__(
        self,
        broker: Broker,
        workers: Workers,
        calls: BrokerCalls,
        unreported: Unreported,
        *,
        namespace: str,
        batch_size: int,
        gather_delay: float,
    ):
        super().__init__(name=f"{namespace}-result-notifier")
        self._broker = broker
        self._workers = workers
        self._calls = calls
        self._unreported = unreported
        self._namespace = namespace
        self._batch_size = batch_size
        self._gather_delay = gather_delay
        self._history_records: list[HistoryRecord] = []  # finished, not written yet
        self._history_due = 0.0  # monotonic time the records held must be written by
        self._outage = Outage("result notifier")

    def run(self) -> None:
        while True:
            batch = self._next_reports()
            stopping = batch[-1] is STOP
            jobs = batch[:-1] if stopping else batch
            if jobs:
                self._report(jobs)  # type: ignore[arg-type]
            if stopping:
                self._record_history([], flush=True)
                return

    def stop(self) -> None:
        """End once the jobs finished so far are reported, and wait for it."""
        self._workers.out_queue.put(STOP)  # type: ignore[arg-type]
        self.join()

    def _next_reports(self) -> list[Job | None]:
        """Wait for one finished job, then take those already waiting, up to a batch; while
        other jobs run, wait ``gather_delay`` for them once."""
        out_queue = self._workers.out_queue
        batch = self._drained_into([self._next_finished()])
        if self._batch_open(batch) and self._jobs_running():
            try:
                batch.append(out_queue.get(timeout=self._gather_delay))
            except Empty:
                return batch
            self._drained_into(batch)
        return batch

    def _next_finished(self) -> Job | None:
        """Wait for the next finished job (or ``STOP``); history records held meanwhile are
        written once their delay is over."""
        out_queue = self._workers.out_queue
        while self._history_records:
            try:
                return out_queue.get(timeout=max(0.0, self._history_due - time.monotonic()))
            except Empty:
                self._record_history([], flush=True)
        return out_queue.get()

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
        return batch[-1] is not STOP and len(batch) < self._batch_size

    def _jobs_running(self) -> bool:
        return self._workers.in_flight > 0

    def _report(self, jobs: list[Job]) -> None:
        """Tell the broker how ``jobs`` ended, retrying through outages."""
        for job in jobs:
            if job.status not in _ENDED:
                self._fail_if_unserializable(job)
        ended = [job for job in jobs if job.status in _ENDED]
        retried = [job for job in jobs if job.status not in _ENDED]
        broker, outage = self._broker, self._outage
        if ended:
            what = f"reporting {len(ended)} job(s)"
            self._calls.call(what, outage, broker.remove_jobs_from_running, ended)
        if retried:
            what = f"retrying {len(retried)} job(s)"
            self._calls.call(what, outage, broker.enqueue_jobs, retried, True)
        self._unreported.reported(len(jobs))
        self._record_history(jobs)

    def _record_history(self, jobs: list[Job], flush: bool = False) -> None:
        """Keep the records of the jobs that ended in the history (``spinach.history``):
        held, then written together once ``write_batch`` of them are held or the first
        has waited ``write_delay`` (``_next_finished`` sees to that), and at stop."""
        history = self._workers.history
        if history is None:
            return
        records, settings = self._history_records, history.settings
        if not records:
            self._history_due = time.monotonic() + settings.write_delay
        records.extend(history.take(jobs))
        if not records:
            return
        if flush or len(records) >= settings.write_batch or time.monotonic() >= self._history_due:
            self._history_records = []
            what = f"recording {len(records)} finished job(s)"
            self._calls.call(
                what, self._outage, self._broker.record_history, records, settings.retention,
                settings.max_records,
            )  # fmt: skip

    def _fail_if_unserializable(self, job: Job) -> None:
        """Fail a job to retry whose payload cannot be built (its task put a value JSON
        cannot carry in its arguments or meta): the broker would refuse it at every try,
        holding up every outcome behind it."""
        try:
            job.serialize()
        except UnserializableArgumentError as exc:
            logger.error("%s cannot be retried, failing it: %s", job, exc)
            job.status = JobStatus.FAILED
            signals.job_failed.send(self._namespace, job=job, err=exc)
