"""The CPU cost of Celery's events (``-E``) in a facade worker, on workload 3's jobs.

Runs a facade app's worker in this process (8 threads) on a throwaway Redis, draining
``--jobs`` no-op jobs enqueued beforehand, alternately without and with the worker's
events (task and worker events, as ``spinach-compat worker -E``; no receiver is
subscribed: a subscriber's cost is Redis's, in its own process). It prints the CPU
seconds this process spent per 1,000 jobs (every thread: the job threads and the events'
publisher), the jobs per second, and the CPU time of the events' publisher thread per job,
the medians of ``--runs``: on a shared machine the CPU times are the steadier figures, as
they do not count the time other processes took (the publisher's, of one thread, is the
steadiest).

    .venv/bin/python bench/events_cost.py --jobs 20000 --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.redis_server import RedisServer

THREADS = 8  #: worker threads, as workload 3's


def measure(url: str, jobs: int, events: bool, run: int) -> tuple[float, float, float]:
    """``(cpu seconds, wall seconds, the events' publisher thread's cpu seconds)`` of one
    worker draining ``jobs`` no-op jobs."""
    from spinach_compat import Celery, group
    from spinach_compat.events.worker import WorkerEvents

    app = Celery(f"cost{run}{int(events)}", broker=url, set_as_current=False)
    done, count, lock = threading.Event(), [0], threading.Lock()

    @app.task(ignore_result=True)
    def noop() -> None:
        with lock:
            count[0] += 1
            if count[0] == jobs:
                done.set()

    for start in range(0, jobs, 1000):
        group(noop.s() for _ in range(min(1000, jobs - start))).apply_async()
    service = WorkerEvents(app, f"cost@{run}", tasks=True) if events else None
    cpu, wall = time.process_time(), time.perf_counter()
    if service is not None:
        service.start()
    app.start_worker(concurrency=THREADS, block=False)
    if not done.wait(600):
        raise SystemExit(f"only {count[0]} of {jobs} jobs ran")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    publisher = _thread_cpu("spinach-events")
    app.stop_worker()
    if service is not None:
        service.shutdown()
    return cpu, wall, publisher


def _thread_cpu(name: str) -> float:
    """The CPU seconds the running thread ``name`` spent so far (0 if none runs)."""
    for thread in threading.enumerate():
        if thread.name == name and thread.ident is not None:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    figures: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    with RedisServer() as server:
        for run in range(args.runs):
            for events in (False, True) if run % 2 == 0 else (True, False):
                figures[events].append(measure(server.url, args.jobs, events, run))
    _report(figures, args.jobs)


def _report(figures: dict[bool, list[tuple[float, float, float]]], jobs: int) -> None:
    per_k = {e: statistics.median(r[0] for r in runs) * 1000 / jobs for e, runs in figures.items()}
    rate = {e: jobs / statistics.median(r[1] for r in runs) for e, runs in figures.items()}
    publisher = statistics.median(r[2] for r in figures[True]) * 1e6 / jobs
    print(f"{'':28}{'events off':>12}{'events on':>12}{'cost':>8}")
    print(f"{'CPU seconds per 1000 jobs':28}{per_k[False]:12.3f}{per_k[True]:12.3f}"
          f"{(per_k[True] / per_k[False] - 1) * 100:+7.1f}%")  # fmt: skip
    print(f"{'jobs/s (wall)':28}{rate[False]:12.0f}{rate[True]:12.0f}"
          f"{(rate[False] / rate[True] - 1) * 100:+7.1f}%")  # fmt: skip
    print(f"{'publisher thread, us per job':28}{'':12}{publisher:12.1f}")


if __name__ == "__main__":
    main()
