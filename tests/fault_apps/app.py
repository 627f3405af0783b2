"""An Engine on a RedisBroker whose tasks record their runs in Redis.

A worker process loads it as ``tests.fault_apps.app:spin``; the environment says where and
how (``environment()`` builds it):

``FAULT_REDIS_URL``
    the Redis of the broker and of the records (without it ``spin`` is None: the test
    process imports this module only for ``build_engine`` and the key names);
``FAULT_NAMESPACE``
    the engine's namespace (default ``faults``);
``FAULT_<TUNABLE>``
    the ``RedisBroker`` tunables of ``TUNABLES`` (e.g. ``FAULT_DEAD_WORKER_THRESHOLD``);
``FAULT_LATE_TASK=1``
    also registers the task ``late``, as a newer release of the application would;
``FAULT_SLOW_THREAD_START=1``
    makes every worker thread start slowly (see ``_hold_back_worker_threads``).

Every run of a task adds one entry (JSON: job id, task, pid, retries, a random run id) to
the set ``runs_key(ns)`` and, when it ends, its job id to the set ``done_key(ns)``: SADD
of a fresh run id is idempotent, so a command redis-py sends again (after a killed
connection or a restart) still counts one run. ``hold`` and ``crunch`` also push their
entry to the list ``started_key(ns)``, for the test to BLPOP. The records ride out a Redis
outage: a task retries them until ``RECORD_DEADLINE``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from spinach import Engine, RedisBroker, current_job, signals
from spinach.workers.prefetch import PrefetchSettings

logger = logging.getLogger("fault_apps.app")

#: Seconds a task keeps retrying to record a run while Redis is unreachable.
RECORD_DEADLINE = 60.0
#: Seconds ``hold`` waits for the test to release it before failing.
HOLD_DEADLINE = 60.0
#: Seconds a slow-starting worker thread waits at most for its engine to stop.
SLOW_START_DEADLINE = 60.0

#: Environment variable -> ``RedisBroker`` keyword argument (all floats).
TUNABLES = {
    "FAULT_HEARTBEAT_INTERVAL": "heartbeat_interval",
    "FAULT_DEAD_WORKER_THRESHOLD": "dead_worker_threshold",
    "FAULT_DEAD_WORKER_CHECK_INTERVAL": "dead_worker_check_interval",
    "FAULT_IDLE_POLL_INTERVAL": "idle_poll_interval",
    "FAULT_RECONNECT_MAX_DELAY": "reconnect_max_delay",
    "FAULT_SOCKET_TIMEOUT": "socket_timeout",
}

_REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


# -- keys of the records ---------------------------------------------------------------------


def runs_key(namespace: str) -> str:
    """Set of the runs: one JSON entry per run of a task."""
    return f"fault-test/{namespace}/runs"


def done_key(namespace: str) -> str:
    """Set of the ids of the jobs whose run ended (at least once)."""
    return f"fault-test/{namespace}/done"


def started_key(namespace: str) -> str:
    """List of the run entries of ``hold`` and ``crunch``, pushed when they start."""
    return f"fault-test/{namespace}/started"


def release_key(namespace: str, job_id: str) -> str:
    """List a ``hold`` job waits on (BLPOP) until the test pushes to it."""
    return f"fault-test/{namespace}/release/{job_id}"


# -- configuration -----------------------------------------------------------------------------


def environment(url: str, namespace: str, **options: Any) -> dict[str, str]:
    """The ``FAULT_*`` variables of a worker process: tunables by their ``RedisBroker``
    name, plus ``late_task`` and ``slow_thread_start`` flags and the ``prefetch_limit``."""
    env = {"FAULT_REDIS_URL": url, "FAULT_NAMESPACE": namespace}
    by_name = {name: var for var, name in TUNABLES.items()}
    for name, value in options.items():
        if name in by_name:
            env[by_name[name]] = str(value)
        elif name == "prefetch_limit":
            env["FAULT_PREFETCH_LIMIT"] = str(int(value))
        elif name in ("late_task", "slow_thread_start"):
            env[f"FAULT_{name.upper()}"] = "1" if value else ""
        else:
            raise TypeError(f"unknown option {name!r}")
    return env


def build_engine(url: str, namespace: str, *, late_task: bool = False, **tunables: float) -> Engine:
    """An engine of every task of this module on a RedisBroker of ``url``."""
    broker = RedisBroker(url, reconnect_base_delay=0.02, **tunables)
    engine = Engine(broker, namespace=namespace)
    engine.task(record, name="record", max_retries=3)
    engine.task(record_once, name="record_once", max_retries=0)
    engine.task(hold, name="hold", max_retries=3)
    engine.task(hold_once, name="hold_once", max_retries=0)
    engine.task(crunch, name="crunch", max_retries=3)
    if late_task:
        engine.task(late, name="late", max_retries=0)
    return engine


# -- recording -------------------------------------------------------------------------------


class Recorder:
    """Writes the records of one worker process, retrying through Redis outages."""

    def __init__(self, url: str, namespace: str):
        self.namespace = namespace
        self.redis = redis.Redis.from_url(
            url,
            socket_timeout=5.0,
            socket_connect_timeout=2.0,
            retry=Retry(ExponentialWithJitterBackoff(base=0.02, cap=0.5), 3),
        )

    def call(self, method: str, *args: Any) -> Any:
        deadline = time.monotonic() + RECORD_DEADLINE
        while True:
            try:
                return getattr(self.redis, method)(*args)
            except _REDIS_ERRORS:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # Redis is away: try again soon

    def run_started(self, announce: bool = False) -> dict[str, Any]:
        """Record a run of the current job; with ``announce``, push it to the started list."""
        job = current_job()
        assert job is not None, "a task of this app runs in a worker only"
        entry = {
            "job": job.id,
            "task": job.task_name,
            "pid": os.getpid(),
            "retries": job.retries,
            "run": uuid.uuid4().hex,
        }
        text = json.dumps(entry)
        self.call("sadd", runs_key(self.namespace), text)
        if announce:
            self.call("rpush", started_key(self.namespace), text)
        return entry

    def run_ended(self, entry: dict[str, Any]) -> None:
        self.call("sadd", done_key(self.namespace), entry["job"])


_recorder: Recorder | None = None


def _record() -> Recorder:
    if _recorder is None:
        raise RuntimeError("the tasks of this app run in a worker started with FAULT_REDIS_URL")
    return _recorder


# -- tasks -----------------------------------------------------------------------------------


def record(pause: float = 0.0) -> None:
    """Record a run (at-least-once: ``max_retries=3``), after ``pause`` seconds."""
    entry = _record().run_started()
    if pause:
        time.sleep(pause)
    _record().run_ended(entry)


def record_once(pause: float = 0.0) -> None:
    """``record``, at-most-once (``max_retries=0``)."""
    record(pause)


def hold() -> None:
    """Announce the run, then wait until the test pushes to ``release_key``."""
    recorder = _record()
    entry = recorder.run_started(announce=True)
    key = release_key(recorder.namespace, entry["job"])
    deadline = time.monotonic() + HOLD_DEADLINE
    while recorder.call("blpop", [key], 1) is None:
        if time.monotonic() > deadline:
            raise TimeoutError("the test never released the job")
    recorder.run_ended(entry)


def hold_once() -> None:
    """``hold``, at-most-once (``max_retries=0``)."""
    hold()


def crunch(seconds: float) -> int:
    """Announce the run, then compute in pure Python for ``seconds``: the thread holds the
    GIL but at the interpreter's forced switches."""
    recorder = _record()
    entry = recorder.run_started(announce=True)
    end = time.perf_counter() + seconds
    value = 0
    while time.perf_counter() < end:
        for i in range(10_000):
            value = (value * 31 + i) % 1_000_003
    recorder.run_ended(entry)
    return value


def late() -> None:
    """A task only the newer release of the application knows (``FAULT_LATE_TASK=1``)."""
    record()


# -- slow thread start -----------------------------------------------------------------------


def _hold_back_worker_threads(engine: Engine) -> None:
    """Keep every worker thread from taking jobs until its engine has stopped fetching and
    taken back the jobs it had handed over, as a slow per-thread initialization (a
    ``worker_started`` receiver) would while the arbiter already fetched jobs.

    A SIGTERM then finds jobs fetched but not started. The threads look at engine
    internals for this, on purpose: no thread ever runs a job, so the pool's free slots
    are all back only once the stopping engine has drained the jobs handed to it, after
    the arbiter ended. Only then may a thread take from the (drained) pool queue.
    """

    def drained() -> bool:
        arbiter = getattr(engine, "_arbiter", None)
        workers = getattr(engine, "_workers", None)
        if arbiter is None or workers is None or arbiter.ident is None or arbiter.is_alive():
            return False
        return workers.available_slots == workers.number

    def receiver(sender: str, worker_name: str, **kwargs: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            return
        logger.info("%s starts slowly", worker_name)
        deadline = time.monotonic() + SLOW_START_DEADLINE
        while not drained() and time.monotonic() < deadline:
            time.sleep(0.01)  # polls the engine's state, nothing else to wait on
        logger.info("%s started", worker_name)

    signals.worker_started.connect(receiver, sender=engine.namespace, weak=False)


# -- the engine a worker process loads ------------------------------------------------------


def _from_environment() -> Engine | None:
    global _recorder
    url = os.environ.get("FAULT_REDIS_URL")
    if not url:
        return None
    namespace = os.environ.get("FAULT_NAMESPACE") or "faults"
    tunables = {name: float(os.environ[var]) for var, name in TUNABLES.items() if var in os.environ}
    engine = build_engine(
        url, namespace, late_task=bool(os.environ.get("FAULT_LATE_TASK")), **tunables
    )
    _recorder = Recorder(url, namespace)
    if os.environ.get("FAULT_PREFETCH_LIMIT"):
        engine.prefetch = PrefetchSettings(limit=int(os.environ["FAULT_PREFETCH_LIMIT"]))
    if os.environ.get("FAULT_SLOW_THREAD_START"):
        _hold_back_worker_threads(engine)
    return engine


spin = _from_environment()
