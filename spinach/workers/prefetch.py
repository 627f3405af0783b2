"""Prefetch: jobs a thread pool holds beyond its busy threads, while its jobs are short.

A pool fetching only for its free threads leaves a thread idle for a fetch's round trip
after each job, and fetches one or two jobs at a time under load. Holding a few more jobs
than threads hides the round trip and makes fewer, larger fetches; the price is a held job
waiting for a thread of this process while another process may be free. So a pool holds
jobs only while the jobs it ran lately were short (their mean run time below
``PrefetchSettings.short_job``): a held job then waits about one short job. A pool that has
run no job yet, or whose jobs got long, holds none.

Held jobs are fetched, hence marked running under this worker: a stop gives them back
unstarted; a crash recovers them as it recovers running jobs (the broker cannot tell them
apart), so a held job with retries left runs again and one without is failed without
having run; and they count towards their task's ``max_concurrency`` while held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: The longest run time ``Prefetch.observe`` counts, in ``short_job``s: lower forgets a long
#: job sooner (a few short ones switch prefetching back on), higher weighs long jobs more.
OUTLIER_CAP = 10


@dataclass(frozen=True)
class PrefetchSettings:
    """How many jobs a thread pool may hold beyond its threads, and when."""

    #: Jobs held beyond the threads while jobs are short; None: as many as the threads.
    #: More hides longer round trips and fetches in larger batches; each held job may wait
    #: for a thread here while another worker is free. 0 turns prefetching off.
    limit: int | None = None
    #: Seconds: the mean run time of recent jobs below which the pool holds jobs. Higher
    #: prefetches longer jobs too, whose held jobs wait longer (about one run time).
    short_job: float = 0.005
    #: Weight of the last job in the mean run time (an exponential moving average).
    #: Higher follows a change of job lengths sooner, and one odd job more.
    weight: float = 0.1

    def __post_init__(self) -> None:
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 0):
            raise ValueError(f"the prefetch limit must be None or an int >= 0, not {self.limit!r}")
        if not 0 < self.weight <= 1:
            raise ValueError(f"the prefetch weight must be in (0, 1], not {self.weight!r}")


class Prefetch:
    """A pool's prefetch: its limit, and the mean run time that switches it on and off.

    ``observe`` is called by the pool's threads without a lock: a lost update only moves
    the mean a little less.
    """

    def __init__(self, settings: PrefetchSettings, threads: int):
        self.limit = threads if settings.limit is None else settings.limit
        self.short_job = settings.short_job
        self.weight = settings.weight
        self.mean_run_time = math.inf  # no job run yet: hold none

    def observe(self, run_time: float) -> None:
        """Note one job's run time in seconds, at most ``OUTLIER_CAP`` times ``short_job``:
        a process's first jobs (imports, connections) or a rare long one would otherwise
        keep the mean long for many short jobs after them."""
        run_time = min(run_time, self.short_job * OUTLIER_CAP)
        if self.mean_run_time == math.inf:
            self.mean_run_time = run_time
        else:
            self.mean_run_time += (run_time - self.mean_run_time) * self.weight

    @property
    def extra(self) -> int:
        """Jobs the pool may hold now beyond its threads."""
        return self.limit if self.mean_run_time < self.short_job else 0

    @property
    def refill_at(self) -> int:
        """Free slots worth a fetch while every thread is busy: half the held jobs, so that
        a fetch brings several jobs and lands before the held ones run out."""
        return self.room()[1]

    def room(self) -> tuple[int, int]:
        """``extra`` and ``refill_at`` together (read per job ended: ``extra`` once)."""
        extra = self.extra
        return extra, max(1, extra // 2)
