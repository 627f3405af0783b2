"""Signals sent by the engine, with its namespace as sender.

Listen to every engine with ``signal.connect(receiver)`` or to one with
``@signal.connect_via(namespace)``. A receiver that raises is logged and skipped: it never
breaks the worker that sent the signal.

Receivers run in the thread that sends the signal (a worker thread for the job signals), so
they must be quick and thread-safe.
"""

import logging
import weakref
from collections.abc import Callable, Hashable
from typing import Any

from blinker import ANY, NamedSignal

logger = logging.getLogger(__name__)


class SafeNamedSignal(NamedSignal):
    """A blinker signal whose failing receivers are logged instead of propagated.

    The receivers of a sender that is a str (an engine's namespace) or ``ANY`` are looked up
    once and kept until a receiver connects or disconnects: the job signals are sent twice
    per job, and blinker's lookup (a set union and a weak reference check per receiver)
    costs more than a metrics receiver's work. A sender with a weakly connected receiver
    keeps blinker's lookup, which drops dead references.
    """

    def __init__(self, name: str, doc: str | None = None):
        super().__init__(name, doc)
        #: sender -> its receivers (None: use blinker's lookup); emptied on any change.
        self._cached: dict[Hashable, tuple[Callable[..., Any], ...] | None] = {}

    def connect(self, receiver: Any, sender: Any = ANY, weak: bool = True) -> Any:
        self._cached = {}
        try:
            return super().connect(receiver, sender, weak)
        finally:
            self._cached = {}

    def _disconnect(self, receiver_id: Hashable, sender_id: Hashable) -> None:
        self._cached = {}
        super()._disconnect(receiver_id, sender_id)
        self._cached = {}

    def _clear_state(self) -> None:
        self._cached = {}
        super()._clear_state()

    def _receivers_of(self, subject: Any) -> Any:
        """The receivers to call for ``subject``: kept (see the class doc) or blinker's."""
        if type(subject) is not str and subject is not ANY:
            return self.receivers_for(subject)
        cached = self._cached
        try:
            receivers = cached[subject]
        except KeyError:
            strong = not any(isinstance(r, weakref.ref) for r in self.receivers.values())
            receivers = tuple(self.receivers_for(subject)) if strong else None
            cached[subject] = receivers
        return self.receivers_for(subject) if receivers is None else receivers

    def send(self, *sender: Any, **kwargs: Any) -> list[tuple[Any, Any]]:
        if not self.receivers:  # the common case, kept cheap for the job hot path
            return []
        subject = sender[0] if sender else ANY
        results = []
        for receiver in self._receivers_of(subject):
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
