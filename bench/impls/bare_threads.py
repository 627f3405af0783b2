"""The bare-thread ceiling of one worker process: the no-op job's own call, no broker.

    python bare_threads.py [--threads 8] [--part 0 --parts 1]

Reads how many jobs the harness waits for (``bench:target``), takes its part of them
(``--part`` of ``--parts`` processes) and runs ``_jobs.count`` that many times from
``--threads`` threads fed by a queue, as a threaded worker's threads would run the jobs it
fetched, but with nothing fetched: what is left is the job itself and its bookkeeping, the
most any threaded worker can run in one process here. It then waits for the harness's
SIGTERM (a worker that exits early counts as broken). Needs ``BENCH_REDIS_URL``.
"""

from __future__ import annotations

import argparse
import queue
import signal
import threading

import _jobs


def share(target: int, part: int, parts: int) -> int:
    """Jobs of process ``part`` (0-based) of ``parts`` when ``target`` are run in all."""
    return target // parts + (1 if part < target % parts else 0)


def run(jobs: int, threads: int) -> None:
    """Run ``jobs`` no-op jobs on ``threads`` threads; return once all are done."""
    tickets: queue.SimpleQueue[int] = queue.SimpleQueue()
    for ticket in range(jobs):
        tickets.put(ticket)

    def work() -> None:
        while True:
            try:
                tickets.get_nowait()
            except queue.Empty:
                return
            _jobs.count()

    _jobs.client()  # connect once, before the threads race to
    workers = [threading.Thread(target=work, name=f"bare-{n}") for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--part", type=int, default=0)
    parser.add_argument("--parts", type=int, default=1)
    args = parser.parse_args()
    target = int(_jobs.client().get(_jobs.TARGET_KEY) or 0)
    run(share(target, args.part, args.parts), args.threads)
    signal.pause()  # until the harness stops the worker group


if __name__ == "__main__":
    main()
