"""An Engine named ``spin`` on a partitioned namespace of a Redis Cluster, whose tasks record
their runs on a side Redis (tests/test_partitions_cluster.py).

The environment says where: ``CLI_REDIS_URL`` the broker's ``redis+cluster://...?partitions=N``
URL, ``PART_RECORD_URL`` the side Redis of the records, ``PART_<TUNABLE>`` the liveness
tunables of ``TUNABLES``. Without ``CLI_REDIS_URL``, ``spin`` is None: the test imports this
module for ``build_engine`` and the key names only.

Records (side Redis, so the cluster carries the queue's commands only): every run adds 1 to
its job id in the hash ``RUNS``; ``hold`` pushes ``{job, partition, pid}`` to ``HELD`` when
it starts, then waits for a token of ``RELEASE``; ``tick`` pushes ``{job, at}`` to ``TICKS``.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

import redis

from spinach import Engine, RedisBroker, current_job

RUNS, HELD, RELEASE, TICKS = (
    "part-test/runs",
    "part-test/held",
    "part-test/release",
    "part-test/ticks",
)
#: Seconds ``tick``'s period: short, so that a run of a few seconds spans many periods.
TICK_PERIOD = 0.5
#: Seconds a ``hold`` run waits for its release token before failing.
HOLD_DEADLINE = 120.0

#: Environment variable -> ``RedisBroker`` keyword argument (all floats).
TUNABLES = {
    "PART_HEARTBEAT_INTERVAL": "heartbeat_interval",
    "PART_DEAD_WORKER_THRESHOLD": "dead_worker_threshold",
    "PART_DEAD_WORKER_CHECK_INTERVAL": "dead_worker_check_interval",
}

_records: redis.Redis | None = None


def _partition() -> int:
    """The partition the current job was fetched from: its fetch id ends in ``~<index>``."""
    job = current_job()
    assert job is not None and job.attempt, "a task of this app runs in a worker only"
    return int(job.attempt.rpartition("~")[2])


def _run() -> str:
    """Count a run of the current job; its id."""
    job = current_job()
    assert job is not None and _records is not None, "a task of this app runs in a worker only"
    _records.hincrby(RUNS, job.id, 1)
    return job.id


def noop() -> None:
    """Record the run, nothing else: the queue's own cost is what the test measures."""
    _run()


def hold() -> None:
    """Record the run and its partition, then wait for a release token."""
    job_id = _run()
    assert _records is not None
    entry = {"job": job_id, "partition": _partition(), "pid": os.getpid()}
    _records.rpush(HELD, json.dumps(entry))
    if _records.blpop([RELEASE], int(HOLD_DEADLINE)) is None:
        raise TimeoutError(f"job {job_id} of task 'hold' was never released")


def tick() -> None:
    """A periodic run: its job id and the time the broker fired it."""
    job = current_job()
    assert job is not None and _records is not None
    _run()
    _records.rpush(TICKS, json.dumps({"job": job.id, "at": job.at_timestamp}))


def build_engine(url: str, namespace: str, **tunables: float) -> Engine:
    """An engine of this module's tasks on a ``RedisBroker`` of ``url``."""
    engine = Engine(RedisBroker(url, **tunables), namespace=namespace)
    engine.task(noop, name="noop", max_retries=3)
    engine.task(hold, name="hold", max_retries=3)
    engine.task(tick, name="tick", max_retries=3, periodicity=timedelta(seconds=TICK_PERIOD))
    return engine


def _from_environment() -> Engine | None:
    global _records
    url = os.environ.get("CLI_REDIS_URL")
    if not url:
        return None
    _records = redis.Redis.from_url(
        os.environ["PART_RECORD_URL"], socket_timeout=HOLD_DEADLINE + 10
    )
    _records.ping()
    tunables = {name: float(os.environ[var]) for var, name in TUNABLES.items() if var in os.environ}
    return build_engine(url, os.environ["PART_NAMESPACE"], **tunables)


spin = _from_environment()
