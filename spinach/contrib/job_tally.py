"""Job counts kept per thread without locks, for a metrics exporter to take at its pace.

The job signals' receivers run in the job threads, twice per job at least: there they only
add to plain integers and floats of their thread's own ``Tally`` (no lock, no call into a
metrics library). The exporter's reader (``SeriesCounts.take``, under a lock of the
reader's own) turns what was added since its last take into deltas, which it adds to its
metrics when it is scraped or flushes them.

One writer per tally: a tally belongs to an OS thread (``_thread.get_ident``, gevent's
original if it patched it into a greenlet's: the greenlets of a thread share its tally, and
cannot interleave inside a receiver, which never yields; ``threading.get_native_id`` would
do too, but it is a system call, 1-2 us). The reader reads other threads' values without a
lock: each value has one writer, and reading an int or a float is atomic, so a take is at
worst an update or two behind a receiver running at the same time, which the next take
gets. A tally outlives its thread (what a dead thread counted is never lost); a new thread
that gets a dead one's id takes its tally over. The ``running`` entries are the exception:
a thread that finishes a job another thread started pops the other's entry (one dict
operation, atomic).

This module imports no metrics library: ``spinach.contrib.prometheus`` is its exporter.
"""

from __future__ import annotations

import _thread
import sys
import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ..forks import reset_after_fork

#: The events counted per series, in the order of ``SeriesCounts.events``.
EVENTS = ("enqueued", "started", "succeeded", "failed", "retried", "dead_lettered", "revoked")
ENQUEUED, STARTED, SUCCEEDED, FAILED, RETRIED, DEAD_LETTERED, REVOKED = range(len(EVENTS))

#: A series: (namespace, task name, queue).
Key = tuple[str, str, str]


class Deltas(NamedTuple):
    """What one thread counted for one series since the previous take: per event, per
    bucket of each histogram (the last bucket is +Inf) and each histogram's sum."""

    events: list[int]
    run: list[int]
    run_sum: float
    wait: list[int]
    wait_sum: float


class SeriesCounts:
    """What one thread counted for one series. ``bucket`` finds a histogram's bucket."""

    __slots__ = ("_seen", "events", "key", "run", "run_sum", "wait", "wait_sum")

    def __init__(self, key: Key, run_buckets: int, wait_buckets: int):
        self.key = key
        self.events = [0] * len(EVENTS)
        self.run = [0] * run_buckets  #: run-time observations per bucket (not cumulative)
        self.run_sum = 0.0
        self.wait = [0] * wait_buckets  #: queue-wait observations per bucket
        self.wait_sum = 0.0
        self._seen = Deltas(self.events[:], self.run[:], 0.0, self.wait[:], 0.0)

    def take(self) -> Deltas | None:
        """What was counted since the previous take (None: nothing). The reader's: one
        caller at a time.

        The run-time buckets are read first: a job's run time is the last thing counted of
        its attempt (``job_finished``), so every other count of an attempt whose run time
        is read is read too; an exporter that writes the run times last keeps that order
        for its readers.
        """
        run, run_sum = self.run[:], self.run_sum
        now = Deltas(self.events[:], run, run_sum, self.wait[:], self.wait_sum)
        seen = self._seen
        if now == seen:
            return None
        self._seen = now
        return Deltas(
            _minus(now.events, seen.events), _minus(run, seen.run), run_sum - seen.run_sum,
            _minus(now.wait, seen.wait), now.wait_sum - seen.wait_sum,
        )  # fmt: skip


def _minus(now: list[int], before: list[int]) -> list[int]:
    return [a - b for a, b in zip(now, before, strict=True)]


def bucket(bounds: Sequence[float], value: float) -> int:
    """The index of the histogram bucket of ``value``: the first of ``bounds`` (sorted upper
    bounds) at least ``value``, or ``len(bounds)``, the +Inf bucket."""
    return bisect_left(bounds, value)


class Tally:
    """One thread's counts: per series, and the jobs it runs now (id(job) -> their start
    and series)."""

    __slots__ = ("_buckets", "running", "series")

    def __init__(self, run_buckets: int, wait_buckets: int):
        self.series: dict[Key, SeriesCounts] = {}
        self.running: dict[int, tuple[float, SeriesCounts]] = {}
        self._buckets = (run_buckets, wait_buckets)

    def counts(self, key: Key) -> SeriesCounts:
        """The counts of series ``key`` (made on its first event in this thread)."""
        counts = self.series.get(key)
        if counts is None:
            counts = self.series[key] = SeriesCounts(key, *self._buckets)
        return counts


def os_thread_id() -> Callable[[], int]:
    """The function returning the calling OS thread's id: ``_thread.get_ident``, or its
    original if gevent's monkey-patching made it a greenlet's (one greenlet per job would
    make a tally per job)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return _thread.get_ident
    return monkey.get_original("_thread", "get_ident")


class Tallies:
    """The tallies of every thread that counted, for histograms of ``run_buckets`` and
    ``wait_buckets`` buckets (+Inf included)."""

    def __init__(self, run_buckets: int, wait_buckets: int):
        self._buckets = (run_buckets, wait_buckets)
        #: OS thread id -> its tally (receivers: ``by_thread.get(thread_id()) or mine()``)
        self.by_thread: dict[int, Tally] = {}
        self.thread_id = os_thread_id()
        self._adding = threading.Lock()
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: a parent's thread may have held the lock at the fork."""
        self._adding = threading.Lock()

    def mine(self) -> Tally:
        """The calling thread's tally."""
        thread = self.thread_id()
        tally = self.by_thread.get(thread)
        if tally is None:
            with self._adding:
                tally = self.by_thread.setdefault(thread, Tally(*self._buckets))
        return tally

    def every_series(self) -> list[SeriesCounts]:
        """The counts of every thread and series (the reader's list to take)."""
        return [c for tally in list(self.by_thread.values()) for c in list(tally.series.values())]

    def running(self) -> dict[str, int]:
        """Jobs running now, per namespace."""
        running: dict[str, int] = {}
        for tally in list(self.by_thread.values()):
            for _, counts in list(tally.running.values()):
                namespace = counts.key[0]
                running[namespace] = running.get(namespace, 0) + 1
        return running

    def pop_started(self, job_id: int) -> float | None:
        """The start of a job that another thread started (removed from its tally): for a
        receiver of ``job_finished`` that did not start it; None if no thread did."""
        for tally in list(self.by_thread.values()):
            started = tally.running.pop(job_id, None)
            if started is not None:
                return started[0]
        return None
