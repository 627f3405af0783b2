"""The arbiter thread: talks to the broker for the worker threads."""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable

from .. import signals
from ..brokers.base import Broker
from ..exc import UnknownTask, WorkerLostError
from ..job import Job, JobStatus
from ..outage import Outage
from ..task import Tasks
from ..workers import Workers
from .broker_calls import BrokerCalls, Unreported

logger = logging.getLogger("spinach.engine")  # the name these records always had


#: Seconds a future job may be due before the idle arbiter wakes anyway without the
#: subscriber waking it sooner: absorbs rounding (its wake time and the job's due time are
#: computed apart); a job due within it is moved that much late at most.
DUE_TOLERANCE = 0.001


class _Round(enum.Enum):
    """How an arbiter round ended, which says how long to wait before the next one."""

    MAY_HAVE_MORE = "fetched all it asked for: fetch again at once"
    DRAINED = "the queues had fewer jobs than free workers: wait for news or time"
    NO_FREE_WORKER = "every worker is busy: wait for one to finish"


class Arbiter(threading.Thread):
    """Moves due future jobs to their queues, fetches as many jobs as there are free worker
    threads and hands them over, heartbeats and recovers the jobs of dead workers, each on
    its own cadence, until ``stopping`` is set; an outage only pauses it.

    While it waits idle, the broker subscriber thread takes its turn on a notification
    (``on_notification``): it fetches and hands the jobs over itself, one thread hand-off
    fewer on an idle worker's way to a job. ``_turn`` makes the rounds of the two threads
    one at a time; ``finish_turns`` ends the subscriber's for good.

    With ``stop_when_empty``, it calls ``on_empty`` (and ends) once the queues are empty
    and every job handed over was reported.
    """

    def __init__(
        self,
        broker: Broker,
        tasks: Tasks,
        workers: Workers,
        queues: list[str],
        *,
        namespace: str,
        stopping: threading.Event,
        calls: BrokerCalls,
        unreported: Unreported,
        future_check_interval: float,
        on_empty: Callable[[], None] | None = None,
    ):
        super().__init__(name=f"{namespace}-arbiter")
        self._broker, self._tasks, self._workers = broker, tasks, workers
        self.queues = queues
        self._namespace = namespace
        self._stopping = stopping
        self._calls = calls
        self._unreported = unreported
        self._future_check_interval = future_check_interval
        self._on_empty = on_empty
        now = broker.now()
        self._last_heartbeat = now  # registering the worker counts as one
        self._next_heartbeat = now + broker.heartbeat_interval
        self._next_dead_check = now
        self._future_check_at = 0.0
        self._last_future_move = 0.0
        self._turn = threading.RLock()  # held by whichever thread runs a round
        #: Whether a job ending should wake the arbiter: only once a round found every
        #: worker busy. Not during or after a round that had free workers: it fetches again
        #: at once if it filled them, and a job queued since notifies anyway.
        self.wants_slot = True
        self._idle_until: float | None = None  # while idle: when the arbiter wakes anyway

    def run(self) -> None:
        """Fetch and dispatch until told to stop; an outage only pauses it, never ends it."""
        outage = Outage("arbiter")
        while not self._stopping.is_set():
            try:
                done = self._step()
                outage.succeeded()
            except Exception as exc:
                # a stop, or the subscriber back in touch with the broker, cut the wait short
                self._broker.wait_for_event(outage.failed(exc))
                continue
            if done:
                break

    def _step(self) -> bool:
        """One round, then the wait for more work; whether the arbiter should end now."""
        with self._turn:
            self._idle_until = None  # the subscriber takes no turn during this one
            outcome = self._round()
            if self._stopping.is_set():
                return True
            if self._on_empty is not None and self._is_idle():
                logger.info("Queue(s) %s empty and nothing running: stopping",
                            ", ".join(self.queues))  # fmt: skip
                self._on_empty()
                return True
            timeout = self._next_wait(outcome)
        if timeout is not None:
            self._broker.wait_for_event(timeout)
        return False

    def _next_wait(self, outcome: _Round) -> float | None:
        """How long to wait after a round that ended so (None: no wait); an idle wait lets
        the subscriber take the next turn."""
        if outcome is _Round.DRAINED:
            if self._broker.event_pending():  # news came during the round: no wait, and
                return 0.0  # no round trip to learn when the next future job is due
            timeout, self._future_check_at = self._idle_wait()
            self._idle_until = self._broker.now() + timeout
            return timeout
        # busy: move due jobs at least every future_check_interval
        self._future_check_at = min(
            self._future_check_at, self._last_future_move + self._future_check_interval
        )
        if outcome is _Round.NO_FREE_WORKER:  # until a job ends
            return self._idle_timeout()
        return None

    def _round(self) -> _Round:
        """One round of bookkeeping and fetching."""
        self._bookkeeping()
        self._move_future_jobs()
        return self._fetch_round()

    def _fetch_round(self) -> _Round:
        """Fetch as many jobs as there are free workers and hand them over."""
        self.wants_slot = True  # before reading the slots: a job ending now wakes it
        slots = self._workers.slots_to_fetch()
        if slots <= 0 or self._stopping.is_set():  # set before the slot freed: fetch none
            return _Round.NO_FREE_WORKER
        # Free workers: this round fetches for them, and goes on if it fills them all; a
        # job ending meanwhile adds nothing to wake it for.
        self.wants_slot = False
        jobs = self._broker.get_jobs_from_queue(self.queues, slots)
        for job, reason in self._dispatch(jobs):
            self._dead_letter(job, reason)
        if len(jobs) >= min(slots, self._broker.max_fetch_size or slots):
            return _Round.MAY_HAVE_MORE  # all it asked for, or all a fetch gives
        return _Round.DRAINED  # fewer jobs than free workers: one more free adds nothing

    # -- the subscriber's turn -----------------------------------------------------

    def on_notification(self) -> None:
        """A broker notification, in the subscriber thread: if the arbiter waits idle,
        fetch and hand over the jobs here, else (or if anything is left) wake it.

        Only fetching happens here (and the dead-lettering of jobs no task here can run);
        bookkeeping, future moves and outages stay the arbiter's. A fetch whose reply an
        outage lost keeps its fetch id for the arbiter's next fetch (the broker's
        idempotency), so no job is stranded.
        """
        if not self._turn.acquire(blocking=False):  # the arbiter is in a round: it re-checks
            self._broker.notify_local()
            return
        try:
            if not self._take_turn():
                self._broker.notify_local()
        except Exception:  # an outage: the arbiter meets it in its round and rides it out
            logger.debug("The subscriber's fetch failed; waking the arbiter", exc_info=True)
            self._broker.notify_local()
        finally:
            self._turn.release()

    def _take_turn(self) -> bool:
        """The subscriber's round (under ``_turn``); whether the arbiter may sleep on."""
        idle_until = self._idle_until
        if idle_until is None or self._stopping.is_set():
            return False  # not idle: busy, waiting for a free worker, or stopped
        if self._fetch_round() is not _Round.DRAINED:
            return False  # more may wait: the arbiter fetches on
        room = self._broker.room_after_handover()
        if room is not None:  # jobs handed over with their wake-up (not due later): once
            # the registration is spent, the fetch that registers the worker again
            return room > 0 or self._fetch_round() is _Round.DRAINED
        # the notification may be a job due later: wake the arbiter if it is due sooner
        delta = self._broker.next_future_job_delta()
        return delta is None or self._broker.now() + delta >= idle_until - DUE_TOLERANCE

    def finish_turns(self) -> None:
        """Let the subscriber take no more turns: once this returns, no job is handed over
        by it (the stop then gives back what the workers never started)."""
        with self._turn:
            self._idle_until = None

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
            self._future_check_at = now + self._future_check_interval

    def _dispatch(self, jobs: list[Job]) -> list[tuple[Job, str]]:
        """Hand ``jobs`` to the workers, counted once for all of them; ``(job, reason)`` of
        each that cannot run here."""
        runnable, unknown = [], []
        for job in jobs:
            try:
                job.task_func = self._tasks.get(job.task_name).func
            except UnknownTask as exc:
                unknown.append((job, str(exc)))
                continue
            runnable.append(job)
        if runnable:
            self._unreported.dispatched(len(runnable))
            self._workers.submit_jobs(runnable)
        return unknown

    def _dead_letter(self, job: Job, reason: str) -> None:
        """Set aside a fetched job that cannot run, riding out an outage to do so."""
        logger.error("Dead-lettering %s from queue '%s': %s", job, job.queue, reason)
        what = f"dead-lettering {job}"
        self._calls.call(what, Outage("arbiter"), self._broker.dead_letter, job, reason)
        signals.job_dead_lettered.send(self._namespace, job=job, reason=reason)

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
                signals.job_failed.send(self._namespace, job=job, err=err)
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
        if not self._unreported.none:
            return False
        return all(self._broker.is_queue_empty(queue) for queue in self.queues)
