"""A pool of worker threads, each running one job at a time."""

from __future__ import annotations

import queue
import threading
from typing import Any

from .. import signals
from ..job import Job
from .base import Workers

_STOP = None  # sentinel telling a worker thread to end


class ThreadWorkers(Workers):
    """``number`` threads taking jobs from one in-memory queue.

    The pool takes at most ``number`` jobs at a time, so a job fetched from the broker
    starts as soon as it is handed over; with a ``prefetch`` it takes a few more while its
    jobs are short, each waiting here for about one short job.
    """

    holds_jobs = True

    def __init__(self, number: int, namespace: str, **kwargs: Any):
        super().__init__(number, namespace, **kwargs)
        self._in_queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._held: dict[str, Job] = {}  # handed to the pool, no thread started them yet
        self._threads = [
            threading.Thread(
                target=self._work, name=f"{namespace}-worker-{i}", args=(f"worker-{i}",)
            )
            for i in range(1, number + 1)
        ]
        for thread in self._threads:
            thread.start()

    def _start_job(self, job: Job) -> None:
        self._held[job.id] = job
        self._in_queue.put(job)

    def held_jobs(self) -> list[Job]:
        return list(self._held.copy().values())

    def stop(self) -> list[Job]:
        unstarted = self._drain()
        for _ in self._threads:
            self._in_queue.put(_STOP)
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join()
        return unstarted

    def _drain(self) -> list[Job]:
        unstarted = []
        while True:
            try:
                job = self._in_queue.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                self._held.pop(job.id, None)
                unstarted.append(job)
        self._count_in_flight(-len(unstarted))
        return unstarted

    def _work(self, name: str) -> None:
        signals.worker_started.send(self.namespace, worker_name=name)
        try:
            while (job := self._in_queue.get()) is not _STOP:
                self._held.pop(job.id, None)
                self._run(job)
        finally:
            signals.worker_terminated.send(self.namespace, worker_name=name)

    def _run(self, job: Job) -> None:
        self._run_job(job)
