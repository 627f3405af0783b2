"""Workers running each job in a greenlet of its own, for a process patched by gevent.

Needs ``gevent.monkey.patch_all()`` done first, before anything else was imported (the
``spinach-compat`` command does it for ``-P gevent``; a native program calls it on its
first line): the arbiter, notifier and subscriber threads are then greenlets too, in the
one hub of the process, and every blocking call (Redis, sockets, ``time.sleep``, locks)
yields to the others. ``number`` bounds the jobs running at once, so hundreds of I/O-bound
jobs run concurrently in one process; a CPU-bound job blocks every other greenlet until it
yields.

``GreenletTarget`` raises an exception inside a running greenlet at its next switch (a
time limit, a terminate request), cancellable until then: what ``PyThreadState_SetAsyncExc``
does for a thread, but delivered at once to a greenlet blocked in I/O.
"""

from __future__ import annotations

from typing import Any

import gevent
from gevent import monkey
from gevent.pool import Group

from .. import signals
from ..job import Job
from .base import Workers

#: What the signals ``worker_started``/``worker_terminated`` name the pool.
WORKER_NAME = "gevent-worker"


def is_patched() -> bool:
    """Whether gevent's monkey patching of ``threading`` is in effect."""
    return bool(monkey.is_module_patched("threading"))


class GeventWorkers(Workers):
    """Up to ``number`` jobs at once, each in a greenlet spawned for it.

    ``stop`` returns the jobs whose greenlet was spawned but never ran, then waits for the
    running ones.
    """

    def __init__(self, number: int, namespace: str, **kwargs: Any):
        if not is_patched():
            raise RuntimeError(
                "GeventWorkers needs gevent's monkey patching: call gevent.monkey.patch_all() "
                "first thing in the program (spinach-compat -P gevent does it)"
            )
        super().__init__(number, namespace, **kwargs)
        self._group = Group()  # the number of jobs is bounded by ``Workers``
        self._waiting: dict[gevent.Greenlet, Job] = {}  # spawned, not running yet
        signals.worker_started.send(self.namespace, worker_name=WORKER_NAME)

    def _start_job(self, job: Job) -> None:
        greenlet = gevent.Greenlet(self._run, job)
        self._waiting[greenlet] = job
        self._group.start(greenlet)

    def stop(self) -> list[Job]:
        """Return the jobs not started yet; wait for the running ones to end."""
        unstarted = []
        for greenlet, job in list(self._waiting.items()):
            greenlet.kill(block=False)  # unscheduled before it runs: the job never started
            unstarted.append(job)
        self._waiting.clear()
        self._count_in_flight(-len(unstarted))
        current = gevent.getcurrent()
        for greenlet in list(self._group):
            if greenlet is not current:
                greenlet.join()
        signals.worker_terminated.send(self.namespace, worker_name=WORKER_NAME)
        return unstarted

    def _run(self, job: Job) -> None:
        self._waiting.pop(gevent.getcurrent(), None)
        self._run_job(job)


class GreenletTarget:
    """Raises exceptions in one greenlet (the current one when built) from any other."""

    def __init__(self) -> None:
        self.greenlet = gevent.getcurrent()
        self._pending: list[Any] = []  # hub callbacks not run yet

    def inject(self, exc_type: type[BaseException] | None) -> None:
        """Raise ``exc_type`` in the greenlet at its next switch; None cancels the
        exceptions not delivered yet."""
        if exc_type is None:
            for callback in self._pending:
                callback.stop()
            self._pending.clear()
            return
        loop = gevent.get_hub().loop
        self._pending.append(loop.run_callback(self._throw, exc_type))

    def _throw(self, exc_type: type[BaseException]) -> None:
        """In the hub: deliver, unless the greenlet ended meanwhile."""
        self._pending = [c for c in self._pending if c.pending]
        if not self.greenlet.dead:
            self.greenlet.throw(exc_type)
