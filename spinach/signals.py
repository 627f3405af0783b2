"""Signals sent by the engine, with its namespace as sender.

Listen to every engine with ``signal.connect(receiver)`` or to one with
``@signal.connect_via(namespace)``. A receiver that raises is logged and skipped: it never
breaks the worker that sent the signal.

Receivers run in the thread that sends the signal (a worker thread for the job signals), so
they must be quick and thread-safe.
"""

import logging
from typing import Any

from blinker import ANY, NamedSignal

logger = logging.getLogger(__name__)


class SafeNamedSignal(NamedSignal):
    """A blinker signal whose failing receivers are logged instead of propagated."""

    def send(self, *sender: Any, **kwargs: Any) -> list[tuple[Any, Any]]:
        if not self.receivers:  # the common case, kept cheap for the job hot path
            return []
        subject = sender[0] if sender else ANY
        results = []
        for receiver in self.receivers_for(subject):
            try:
                results.append((receiver, receiver(subject, **kwargs)))
            except Exception:
                logger.exception("receiver %r of signal '%s' failed", receiver, self.name)
        return results


before_schedule = SafeNamedSignal(
    "before_schedule",
    doc="Jobs are about to be enqueued (jobs=); receivers may add to each job's meta "
    "(tracing puts its context there).",
)
after_schedule = SafeNamedSignal(
    "after_schedule",
    doc="The enqueue of jobs ended (jobs=, err=): err is None when they are enqueued, else "
    "the error the enqueue raised.",
)
job_started = SafeNamedSignal("job_started", doc="A worker is about to run a job (job=).")
job_finished = SafeNamedSignal(
    "job_finished", doc="A worker finished running a job, whatever its outcome (job=)."
)
job_schedule_retry = SafeNamedSignal(
    "job_schedule_retry", doc="A job failed and is scheduled for another attempt (job=, err=)."
)
job_failed = SafeNamedSignal("job_failed", doc="A job failed for good (job=, err=).")
job_dead_lettered = SafeNamedSignal(
    "job_dead_lettered",
    doc="A fetched job could not run here (its task is unknown) and is now a dead letter "
    "(job=, reason=).",
)
worker_started = SafeNamedSignal(
    "worker_started", doc="A worker thread or loop started (worker_name=)."
)
worker_terminated = SafeNamedSignal(
    "worker_terminated", doc="A worker thread or loop terminated (worker_name=)."
)
