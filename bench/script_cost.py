"""Redis CPU per job of the broker's own paths (its Lua scripts), path by path.

Runs ``RedisBroker``'s real calls on a throwaway redis-server (one-slot layout, no
partitions) and prints, for each path, the Redis CPU per job (per call for the paths that
handle no job: the idle worker's ``move_future_jobs``, ``next_future_job_delta`` and
``heartbeat``), from ``INFO commandstats`` (usec of ``evalsha``, which includes its inner
commands, of the inner commands, and the script's own Lua work: the difference) and from
``INFO cpu`` (``used_cpu_user + used_cpu_sys`` before and after, which also counts the
server's network I/O). The least of ``--runs`` for each figure: on a shared machine the
other processes only ever add to it (``evalsha``'s usec are wall-clock time, the CPU
figures count cache misses). The stats are reset before each path.

Then the enqueue script's own Redis time for one job sent at a time, as the idle latency
workload sends them: handed over to an idle worker (registered, its channel subscribed;
the worker's fetch after each job collects it and registers again) and queued (no
registration), from ``SLOWLOG`` with a threshold of 0 (the wall-clock usec Redis spent in
each call, caches as cold as between real calls; a loop of the same script keeps them
warmer and shows less), the median of each run and the least of the runs.

    .venv/bin/python bench/script_cost.py --jobs 4000 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib.redis_server import RedisServer

from spinach.brokers.base import WorkerInfo
from spinach.brokers.redis import RedisBroker
from spinach.history import HistoryRecord
from spinach.job import Job

FETCH_SIZE = 8  #: jobs per fetch, as a worker of 8 threads asks for
FINISH_BATCH = 8  #: jobs per finish call (the notifier's batches: 1 when idle, more busy)
HISTORY_BATCH = 100  #: records per history call (up to write_batch=500 under load)
ENQUEUE_BATCH = 1000  #: jobs per batched enqueue
MAX_RECORDS = 2000  #: the history's size bound: the second half of the records trims it
QUEUE = "probe"
SLOWLOG_LEN = 100  #: slow log entries kept: more than one call's commands, little memory

Usage = dict[str, float]  # "cpu", "evalsha", "<command>": usec used


def usage(server: RedisServer) -> Usage:
    """Usec of Redis CPU so far (``cpu``) and per command (``INFO commandstats``)."""
    used = {"cpu": server.cpu_seconds() * 1e6}
    for name, stats in server.client.info("commandstats").items():
        used[name.removeprefix("cmdstat_")] = float(stats["usec"])
    return used


def measured(server: RedisServer, action: Callable[[], int]) -> Usage:
    """Redis usec per unit of ``action`` (which returns its number of units), per command."""
    server.client.config_resetstat()
    before = usage(server)
    units = action()
    after = usage(server)
    after.pop("config|resetstat", None)
    after.pop("info", None)
    return {name: (value - before.get(name, 0.0)) / units for name, value in after.items()}


def make_jobs(count: int) -> list[Job]:
    return [Job("probe_task", QUEUE, 0.0, 0, [i], {}) for i in range(count)]


def record_of(job: Job, now: float) -> HistoryRecord:
    return HistoryRecord(
        id=job.id, task=job.task_name, queue=job.queue, status="succeeded", attempts=1,
        scheduled_at=now, started_at=now, finished_at=now, duration=0.001, args="[1]",
    )  # fmt: skip


def paths(broker: RedisBroker, jobs: int) -> dict[str, Callable[[], int]]:
    """The probed paths, in the order they run (each feeds the next)."""
    fetched: list[Job] = []

    def enqueue_single() -> int:
        for job in make_jobs(jobs // 4):
            broker.enqueue_jobs([job])
        return jobs // 4

    def enqueue_batch() -> int:
        batch = make_jobs(jobs)
        for start in range(0, jobs, ENQUEUE_BATCH):
            broker.enqueue_jobs(batch[start : start + ENQUEUE_BATCH])
        return jobs

    def fetch() -> int:
        while got := broker.get_jobs_from_queue(QUEUE, FETCH_SIZE):
            fetched.extend(got)
        return len(fetched)

    def finish() -> int:
        for start in range(0, len(fetched), FINISH_BATCH):
            broker.remove_jobs_from_running(fetched[start : start + FINISH_BATCH])
        return len(fetched)

    def history() -> int:
        now = time.time()
        records = [record_of(job, now) for job in fetched]
        for start in range(0, len(records), HISTORY_BATCH):
            broker.record_history(records[start : start + HISTORY_BATCH], 3600.0, MAX_RECORDS)
        return len(records)

    def repeat(call: Callable[[], Any]) -> Callable[[], int]:
        def run() -> int:
            for _ in range(jobs):
                call()
            return jobs

        return run

    return {
        "enqueue, one at a time": enqueue_single,
        f"enqueue, batches of {ENQUEUE_BATCH}": enqueue_batch,
        f"fetch, {FETCH_SIZE} at a time": fetch,
        f"finish, batches of {FINISH_BATCH}": finish,
        f"history, batches of {HISTORY_BATCH}": history,
        "move_future_jobs, none due (per call)": repeat(broker.move_future_jobs),
        "next_future_job_delta (per call)": repeat(broker.next_future_job_delta),
        "heartbeat (per call)": repeat(broker.heartbeat),
    }


def one_run(server: RedisServer, jobs: int, run: int) -> dict[str, Usage]:
    """Each path's usage in a fresh namespace."""
    broker = RedisBroker(server.url, worker_id=f"probe-worker-{run}")
    broker.set_namespace(f"probe{run}")
    broker.start()
    broker.register_worker(WorkerInfo(id=broker.worker_id, queues=[QUEUE], threads=8))
    try:
        return {name: measured(server, action) for name, action in paths(broker, jobs).items()}
    finally:
        broker.stop()


def report(results: Sequence[dict[str, Usage]]) -> None:
    """Print the least figures: cpu, evalsha, Lua's own, then the inner commands."""
    print(f"{'path (usec of Redis per job)':42} {'cpu':>7} {'evalsha':>8} {'lua':>7}  inner")
    for name in results[0]:

        def least(command: str, name: str = name) -> float:
            return min(r[name].get(command, 0.0) for r in results)

        commands = {c for r in results for c in r[name]} - {"cpu", "evalsha", "evalsha_ro"}
        inner = {c: least(c) for c in commands}
        evalsha = least("evalsha")
        lua = evalsha - sum(inner.values())
        listed = ", ".join(f"{c} {v:.1f}" for c, v in sorted(inner.items(), key=lambda i: -i[1]))
        print(f"{name:42} {least('cpu'):7.1f} {evalsha:8.1f} {lua:7.1f}  {listed}")


def enqueue_times(server: RedisServer, jobs: int, handed: bool, run: int) -> list[int]:
    """Usec of Redis per call of the enqueue script, one job at a time (see the module)."""
    admin = server.client
    tag = f"{'handed' if handed else 'queued'}{run}"
    producer = RedisBroker(server.url, worker_id=f"producer-{tag}")
    idle = RedisBroker(server.url, worker_id=f"idle-{tag}")
    for broker in (producer, idle):
        broker.set_namespace(f"slow{tag}")
        broker.start()
    idle.register_worker(WorkerInfo(id=idle.worker_id, queues=[QUEUE], threads=FETCH_SIZE))
    sha = producer._scripts["enqueue"].sha
    pubsub = admin.pubsub()
    pubsub.subscribe(idle.handover_channel)  # a hand-over needs a listening subscriber
    pubsub.get_message(timeout=5.0)
    idle._listening = handed  # its fetches register it for hand-overs
    admin.config_set("slowlog-log-slower-than", 0)
    admin.config_set("slowlog-max-len", SLOWLOG_LEN)
    times = []
    try:
        for job in make_jobs(jobs):
            idle.get_jobs_from_queue(QUEUE, FETCH_SIZE)  # collects the last one, registers
            admin.slowlog_reset()
            producer.enqueue_jobs([job])
            entries = admin.slowlog_get(SLOWLOG_LEN)
            times += [e["duration"] for e in entries if sha in str(e["command"])]
            while pubsub.get_message():
                pass
    finally:
        admin.config_set("slowlog-log-slower-than", 10000)
        pubsub.close()
        producer.stop()
        idle.stop()
    return times


def report_enqueue(server: RedisServer, jobs: int, runs: int) -> None:
    """Print the enqueue script's usec per call, handed over and queued, runs alternated."""
    medians: dict[str, list[float]] = {"handed over": [], "queued": []}
    for run in range(runs):
        for name, handed in (("handed over", True), ("queued", False)):
            medians[name].append(statistics.median(enqueue_times(server, jobs, handed, run)))
    print("\nenqueue script, one job per call (usec of Redis by SLOWLOG, median per run)")
    for name, values in medians.items():
        listed = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:42} least {min(values):5.0f}  runs {listed}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=4000, help="jobs per path (a quarter "
                        "of them enqueued one at a time); calls of the per-call paths")  # fmt: skip
    parser.add_argument("--runs", type=int, default=3, help="runs; the least figures are printed")
    args = parser.parse_args()
    with RedisServer() as server:
        print(f"redis {server.version()}, {args.jobs} jobs, {args.runs} runs")
        results = [one_run(server, args.jobs, run) for run in range(args.runs)]
        report(results)
        report_enqueue(server, args.jobs // 4, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
