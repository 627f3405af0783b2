"""A partitioned namespace under load on a real 3-master Redis Cluster (issue 19).

30,000 no-op jobs over 3 partitions, one per node, run by 2 ``python -m spinach worker``
processes (tests/cli_apps/partitions_app.py), one of which is SIGKILLed mid-run. The tasks
count their runs on a side Redis, so the cluster carries the queue's traffic only.

What the test asserts:

- none lost, none run twice: every job ran; a job ran more than once only if the survivor
  recovered it from the killed worker (its log names each job it queued again);
- the killed worker held running jobs on at least two partitions (one ``hold`` job per
  partition at the head of its queue, each blocked until released, so by pigeonhole one
  worker holds two), and they ran again after the kill, on their own partitions;
- a periodic task fired at most once per period across both processes (distinct job ids per
  period of its grid; a recovered tick may run twice, it is still one firing);
- each node's share of the **queue commands** is between 25% and 42%. Queue commands, from
  ``INFO commandstats`` reset on every node before the run: the ``EVALSHA``/``EVAL`` calls
  (every state change and fetch of the broker is one script) plus every list and sorted-set
  command (``COMMAND INFO`` categories ``@list`` and ``@sortedset``), which Redis counts
  whether a client or a script ran it. Hash, set, string and pub/sub commands (the scripts'
  bookkeeping, the notifications) and the cluster client's own (``CLUSTER SLOTS``) are left
  out: they follow the same scripts, so they would weigh the same way.

Nothing is timed: the test waits on the side Redis's counters and on the workers' logs.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from spinach import DEFAULT_QUEUE, Batch, Engine
from spinach import options as call_options
from spinach.brokers.redis_layout import partition_of, partition_tags
from spinach.brokers.redis_partitions import PartitionedRedisBroker
from tests.cli_apps import partitions_app as app
from tests.helpers import wait_until
from tests.support.processes import LogReader, StartedProcesses
from tests.support.redis_cluster import RedisClusterServers

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE, PARTITIONS, WORKERS, THREADS = "parts", 3, 2, 4
JOBS = 30_000
#: Jobs per ``schedule_batch``: one script per partition per batch.
BATCH = 1_000
#: Seconds the test waits for an expected state; a passing test never waits that long.
DEADLINE = 150.0
#: Liveness of the workers: the survivor declares the killed one dead within seconds,
#: with room for heartbeats delayed on a loaded machine.
LIVENESS = {
    "PART_HEARTBEAT_INTERVAL": "0.25",
    "PART_DEAD_WORKER_THRESHOLD": "2.0",
    "PART_DEAD_WORKER_CHECK_INTERVAL": "0.25",
}
STARTED = re.compile(r"Worker (\w+) started: ")
RECOVERED = re.compile(r"job (\w+) of task '(\w+)' was running on a dead worker: queued again")
QUEUE_CATEGORIES = {"@list", "@sortedset"}
SCRIPT_COMMANDS = {"evalsha", "eval", "evalsha_ro", "eval_ro"}


def spread_namespace(cluster: RedisClusterServers) -> str:
    """The test's namespace, once its partitions' hash tags are seen on distinct nodes (the
    layout picks each tag in its own range of the slots: ``partition_tags``)."""
    ports = [cluster.port_of_tag(tag) for tag in partition_tags(NAMESPACE, PARTITIONS)]
    assert len(set(ports)) == PARTITIONS, ports
    return NAMESPACE


def key_of_partition(index: int) -> str:
    """A ``partition_key`` routed to partition ``index``."""
    return next(f"k{n}" for n in range(1000) if partition_of(f"k{n}", PARTITIONS) == index)


# -- commandstats ----------------------------------------------------------------------------


def reset_stats(cluster: RedisClusterServers) -> None:
    for port in cluster.ports:
        with cluster.node_client(port) as client:
            client.config_resetstat()


def queue_commands(client: redis.Redis) -> int:
    """The queue commands this node ran since its stats were reset (module docstring)."""
    stats = client.info("commandstats")
    names = [key.removeprefix("cmdstat_") for key in stats]
    simple = [name for name in names if "|" not in name]
    info = client.execute_command("COMMAND", "INFO", *simple) if simple else {}
    total = 0
    for name in simple:
        categories = set((info.get(name) or {}).get("acl_categories", []))
        if name in SCRIPT_COMMANDS or categories & QUEUE_CATEGORIES:
            total += int(stats[f"cmdstat_{name}"]["calls"])
    return total


def node_shares(cluster: RedisClusterServers) -> dict[int, float]:
    counts = {}
    for port in cluster.ports:
        with cluster.node_client(port, decode_responses=True) as client:
            counts[port] = queue_commands(client)
    total = sum(counts.values())
    return {port: count / total for port, count in counts.items()}


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def processes() -> Iterator[StartedProcesses]:
    started = StartedProcesses()
    yield started
    started.end_all(timeout=60)


@pytest.fixture
def records(redis_url: str) -> Iterator[redis.Redis]:
    """The side Redis of the records (the session's server, emptied)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=30)
    yield client
    client.close()


Worker = tuple[subprocess.Popen, LogReader]


def start_worker(processes: StartedProcesses, env: dict[str, str]) -> Worker:
    command = [sys.executable, "-m", "spinach", "worker", "tests.cli_apps.partitions_app:spin",
               "--threads", str(THREADS), "--log-level", "info"]  # fmt: skip
    return processes.start(command, cwd=ROOT, env=env)


def schedule_all(client: Engine) -> tuple[list[str], list[str]]:
    """One ``hold`` job at the head of each partition's queue, then ``JOBS`` no-op jobs."""
    holds = Batch()
    for index in range(PARTITIONS):
        holds.schedule(call_options("hold", partition_key=key_of_partition(index)))
    hold_ids = [job.id for job in client.schedule_batch(holds)]
    noop_ids: list[str] = []
    for start in range(0, JOBS, BATCH):
        batch = Batch()
        for _ in range(min(BATCH, JOBS - start)):
            batch.schedule("noop")
        noop_ids += [job.id for job in client.schedule_batch(batch)]
    return hold_ids, noop_ids


# -- the test --------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_thirty_thousand_jobs_over_three_partitions_of_a_cluster(
    redis_cluster: RedisClusterServers, redis_cluster_url: str, redis_url: str, records, processes
) -> None:
    namespace = spread_namespace(redis_cluster)
    url = f"{redis_cluster_url}?partitions={PARTITIONS}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLI_REDIS_URL": url,
           "PART_RECORD_URL": redis_url, "PART_NAMESPACE": namespace, **LIVENESS}  # fmt: skip
    client = app.build_engine(url, namespace)
    broker = client.broker
    assert isinstance(broker, PartitionedRedisBroker)
    try:
        reset_stats(redis_cluster)
        workers = [start_worker(processes, env) for _ in range(WORKERS)]  # they start meanwhile
        hold_ids, noop_ids = schedule_all(client)
        victim, held = kill_a_worker_holding_two_partitions(workers, records)
        # A replacement keeps two processes running (a supervisor would restart one).
        live = [w for w in workers if w[0].pid != victim] + [start_worker(processes, env)]
        records.rpush(app.RELEASE, *["go"] * 10)  # the holds end once run again
        everything = set(hold_ids + noop_ids)
        assert wait_until(lambda: records.hlen(app.RUNS) >= len(everything), DEADLINE)
        assert wait_until(lambda: everything <= ran(records).keys(), DEADLINE), "jobs lost"
        grid = {name: at for at, name in broker.inspect_periodic_tasks()}["tick"]
        for process, log in live:
            log.wait_for(STARTED)  # a stop, not a start cut short
            process.send_signal(signal.SIGTERM)
        for process, log in live:
            assert process.wait(60) == 0, log.text
        shares = node_shares(redis_cluster)
        assert broker.running_jobs() == {}
        assert broker.list_dead_letters() == []
        left = broker.queue_jobs(DEFAULT_QUEUE, 0, 10)  # a tick fired as the workers stopped
        assert {job.task_name for job in left} <= {"tick"}
    finally:
        broker.stop()

    recovered = {match.group(1) for _, log in live for match in RECOVERED.finditer(log.text)}
    check_runs(records, everything, recovered)
    check_recovery(records, held, victim, recovered)
    check_ticks(records, grid, recovered)
    print(f"queue command shares per node: {sorted(round(s, 3) for s in shares.values())}; "
          f"{len(recovered)} jobs recovered from the killed worker")  # fmt: skip
    assert all(0.25 <= share <= 0.42 for share in shares.values()), shares


def ran(records: redis.Redis) -> dict[str, int]:
    return {key.decode(): int(value) for key, value in records.hgetall(app.RUNS).items()}


def kill_a_worker_holding_two_partitions(
    workers: list[Worker], records: redis.Redis
) -> tuple[int, list[dict[str, Any]]]:
    """Once every ``hold`` job runs and half of the jobs ran, SIGKILL the worker holding
    jobs of two partitions or more; its pid and the first hold runs."""
    for _, log in workers:
        log.wait_for(STARTED)
    assert wait_until(lambda: records.llen(app.HELD) >= PARTITIONS, DEADLINE)
    held = [json.loads(raw) for raw in records.lrange(app.HELD, 0, -1)]
    by_pid: dict[int, set[int]] = {}
    for entry in held:
        by_pid.setdefault(entry["pid"], set()).add(entry["partition"])
    victim = max(by_pid, key=lambda pid: len(by_pid[pid]))
    assert len(by_pid[victim]) >= 2, held  # held jobs running on more than one partition
    assert wait_until(lambda: records.hlen(app.RUNS) >= JOBS // 2, DEADLINE)
    os.kill(victim, signal.SIGKILL)
    return victim, held


def check_runs(records: redis.Redis, everything: set[str], recovered: set[str]) -> None:
    """None lost; none run twice unless recovered from the killed worker."""
    runs = ran(records)
    assert everything <= runs.keys()
    twice = {job_id for job_id, count in runs.items() if count > 1}
    assert twice <= recovered, f"{len(twice - recovered)} jobs ran twice without a recovery"


def check_recovery(
    records: redis.Redis, held: list[dict[str, Any]], victim: int, recovered: set[str]
) -> None:
    """The killed worker's holds, on two partitions or more, ran again on their partitions."""
    killed = {entry["job"]: entry["partition"] for entry in held if entry["pid"] == victim}
    assert len(set(killed.values())) >= 2
    assert killed.keys() <= recovered
    again = [json.loads(raw) for raw in records.lrange(app.HELD, 0, -1)]
    rerun = {e["job"]: e["partition"] for e in again if e["job"] in killed and e["pid"] != victim}
    assert rerun == killed


def check_ticks(records: redis.Redis, grid: float, recovered: set[str]) -> None:
    """One firing (job id) per period of the tick's grid (``grid``: one of its due times)
    over many periods. A firing at ``t`` sets the next due time to the first point of the
    grid after ``t``, so the firings fall in distinct periods, however late each one is."""
    ticks = [json.loads(raw) for raw in records.lrange(app.TICKS, 0, -1)]
    firings = {tick["job"]: tick["at"] for tick in ticks}
    assert len(firings) >= 3, ticks
    periods = Counter(math.floor((at - grid) / app.TICK_PERIOD + 1e-6) for at in firings.values())
    assert max(periods.values()) == 1, sorted(firings.values())
    reruns = Counter(tick["job"] for tick in ticks)
    assert {job for job, count in reruns.items() if count > 1} <= recovered
