"""Worker processes and Redis failing under real load: ``python -m spinach worker`` processes
on a real redis-server, killed, restarted, cut off or fed garbage.

The workers load ``tests/fault_apps/app.py``, whose tasks record each run in Redis, so the
test counts runs from outside: exactly once, at least once, or never. Each test gets its
own redis-server (loopback, a free port, append-only with fsync always). Tests wait on
what they can observe (Redis state, log lines, process exits), with generous deadlines;
they print what they measure (recovery time, duplicate runs) but never assert on time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from spinach import DEFAULT_QUEUE, Engine, Job, MemoryBroker, WorkerInfo
from spinach.brokers.redis import RedisBroker
from spinach.testing import FakeClock
from tests.fault_apps import app
from tests.helpers import SignalRecorder
from tests.support.processes import LogReader
from tests.support.redis_fixtures import require_redis_server
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.fault_apps.app:spin"
NAMESPACE = "faults"

#: Seconds a test waits for something expected before failing; a passing test never does.
DEADLINE = 60.0

#: Liveness settings that declare a silent worker dead within about a second.
QUICK_LIVENESS = {
    "heartbeat_interval": 0.2,
    "dead_worker_threshold": 1.0,
    "dead_worker_check_interval": 0.2,
}
#: Liveness settings no Redis outage of these tests outlasts: no worker is declared dead.
PATIENT_LIVENESS = {
    "heartbeat_interval": 0.5,
    "dead_worker_threshold": 15.0,
    "dead_worker_check_interval": 0.5,
}
#: Reconnect quickly once Redis is back (the default cap is 10 s).
QUICK_RECONNECT = {"reconnect_max_delay": 0.5}

WORKER_STARTED = re.compile(r"Worker (\w+) started: ")
WORKER_DECLARED_DEAD = "was declared dead"
JOB_RECOVERED = "was running on a dead worker"

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll ``predicate`` (Redis state: nothing to block on) until true; fail after
    ``timeout``. A Redis error counts as false: the server may be restarting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except REDIS_ERRORS:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- worker processes ------------------------------------------------------------------------


class Worker:
    """A ``python -m spinach worker`` process with its log."""

    def __init__(self, name: str, threads: int, env: dict[str, str]):
        self.name = name
        command = [sys.executable, "-m", "spinach", "worker", APP, "--threads", str(threads)]
        self.process = subprocess.Popen(
            [*command, "--log-level", "info"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        self.log = LogReader(self.process.stdout, f"log-{name}")
        self._worker_id: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def worker_id(self) -> str:
        """Its broker worker id, once it logged its start (waits for that)."""
        if self._worker_id is None:
            self._worker_id = self.log.wait_for(WORKER_STARTED)[0].group(1)
        return self._worker_id

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.kill()

    def terminate(self) -> int:
        """SIGTERM, then its exit status once it stopped gracefully."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self) -> int:
        return self.process.wait(DEADLINE)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(DEADLINE)
        assert self.process.stdout is not None
        self.log.join()
        self.process.stdout.close()


def process_env(server: RedisServer, **options: Any) -> dict[str, str]:
    """The environment of a worker or CLI process of the fault app."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(app.environment(server.url, NAMESPACE, **options))
    return env


def run_cli(server: RedisServer, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m spinach ARGS`` against the fault app, until it exits."""
    return subprocess.run(
        [sys.executable, "-m", "spinach", *args],
        cwd=ROOT,
        env=process_env(server),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


# -- what the tasks recorded -------------------------------------------------------------------


class Records:
    """The runs the tasks of the fault app recorded, read from Redis."""

    def __init__(self, server: RedisServer):
        self.redis = server.client(socket_timeout=DEADLINE + 10)  # blpop waits DEADLINE

    def runs(self) -> dict[str, list[dict[str, Any]]]:
        """Run entries by job id."""
        by_job: dict[str, list[dict[str, Any]]] = {}
        for raw in self.redis.smembers(app.runs_key(NAMESPACE)):
            entry = json.loads(raw)
            by_job.setdefault(entry["job"], []).append(entry)
        return by_job

    def done(self) -> set[str]:
        return {raw.decode() for raw in self.redis.smembers(app.done_key(NAMESPACE))}

    def done_count(self) -> int:
        return int(self.redis.scard(app.done_key(NAMESPACE)))

    def next_started(self) -> dict[str, Any]:
        """The entry of the next ``hold`` or ``crunch`` run to start, waiting for it."""
        reply = self.redis.blpop([app.started_key(NAMESPACE)], int(DEADLINE))
        assert reply is not None, "no job started in time"
        return json.loads(reply[1])

    def release(self, job_id: str) -> None:
        self.redis.lpush(app.release_key(NAMESPACE, job_id), "go")

    def wait_done(self, job_ids: set[str]) -> None:
        wait_until(lambda: job_ids <= self.done(), f"{len(job_ids)} jobs to end")

    def close(self) -> None:
        self.redis.close()


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A redis-server of the test's own, append-only (fsync always): it may be killed."""
    with RedisServer(executable=require_redis_server(), appendonly=True) as server:
        yield server


@pytest.fixture
def spawn(server: RedisServer) -> Iterator[Callable[..., Worker]]:
    """Start worker processes: ``spawn(threads, **options)``, options as
    ``app.environment`` takes them. Whatever still runs is killed after the test."""
    started: list[Worker] = []

    def start(threads: int, **options: Any) -> Worker:
        worker = Worker(f"worker-{len(started) + 1}", threads, process_env(server, **options))
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.close()


@pytest.fixture
def client(server: RedisServer) -> Iterator[Engine]:
    """An engine in client mode on the test's server: schedules jobs of the fault app."""
    engine = app.build_engine(server.url, NAMESPACE)
    yield engine
    engine.broker.stop()


@pytest.fixture
def broker(client: Engine) -> RedisBroker:
    assert isinstance(client.broker, RedisBroker)
    return client.broker


@pytest.fixture
def records(server: RedisServer) -> Iterator[Records]:
    recorder = Records(server)
    yield recorder
    recorder.close()


# -- shared checks ---------------------------------------------------------------------------


def schedule_many(client: Engine, task: str, count: int, **kwargs: Any) -> list[Job]:
    """Enqueue ``count`` jobs of ``task``, a few hundred per round trip."""
    jobs = [client.build_job(task, kwargs=kwargs) for _ in range(count)]
    for start in range(0, count, 500):
        client.schedule_jobs(jobs[start : start + 500])
    return jobs


def assert_settled(broker: RedisBroker) -> None:
    """Nothing left anywhere: no queued, future, running job nor dead letter."""
    wait_until(lambda: broker.running_jobs() == {}, "the running jobs to be reported")
    assert broker.queue_lengths() == {}
    assert broker.scheduled_jobs() == []
    assert broker.list_dead_letters() == []


def assert_each_worker_consumes(
    client: Engine, records: Records, workers: list[Worker], threads: int
) -> None:
    """Every worker takes jobs: as many ``hold`` jobs as there are threads in all start,
    which they can only if each worker fills all of its threads (workers spawned with
    ``prefetch_limit=0``: one holding jobs beyond its threads would keep them from the
    other, which is what a prefetch trades)."""
    jobs = [client.build_job("hold") for _ in range(threads * len(workers))]
    client.schedule_jobs(jobs)
    starts = [records.next_started() for _ in jobs]
    assert {entry["job"] for entry in starts} == {job.id for job in jobs}
    assert Counter(entry["pid"] for entry in starts) == {w.pid: threads for w in workers}
    for job in jobs:
        records.release(job.id)
    records.wait_done({job.id for job in jobs})


def duplicates(runs: dict[str, list[dict[str, Any]]], jobs: list[Job]) -> int:
    """How many of ``jobs`` ran more than once."""
    return sum(1 for job in jobs if len(runs.get(job.id, [])) > 1)


def report(text: str) -> None:
    """A measurement, shown with ``pytest -s`` (or in the captured output of a failure)."""
    print(f"\n[process faults] {text}")


# -- 1. a worker process killed mid-job ------------------------------------------------------


def test_the_jobs_of_a_killed_worker_are_recovered_by_another(
    spawn, client, broker, records
) -> None:
    first = spawn(2, **QUICK_LIVENESS)
    retried, once = client.schedule("hold"), client.schedule("hold_once")
    starts = {entry["job"]: entry for entry in (records.next_started(), records.next_started())}
    assert set(starts) == {retried.id, once.id}
    assert {entry["pid"] for entry in starts.values()} == {first.pid}
    second = spawn(2, **QUICK_LIVENESS)
    assert second.worker_id  # it runs: registered and heartbeating

    first.kill()  # SIGKILL in the middle of both jobs
    killed_at = time.monotonic()
    assert first.wait() == -signal.SIGKILL
    rerun = records.next_started()
    recovery = time.monotonic() - killed_at

    assert (rerun["job"], rerun["pid"], rerun["retries"]) == (retried.id, second.pid, 1)
    second.log.wait_for(
        re.escape(f"job {retried.id} of task 'hold' {JOB_RECOVERED}: queued again, retry 1")
    )
    second.log.wait_for(
        re.escape(f"job {once.id} of task 'hold_once' {JOB_RECOVERED}: failed (at-most-once)")
    )
    records.release(retried.id)
    records.wait_done({retried.id})
    assert_settled(broker)
    report(
        f"SIGKILLed worker's job running again on the other worker {recovery:.2f} s after "
        f"the kill (dead_worker_threshold {QUICK_LIVENESS['dead_worker_threshold']} s, "
        f"check interval {QUICK_LIVENESS['dead_worker_check_interval']} s)"
    )

    runs = records.runs()
    attempts = sorted((entry["retries"], entry["pid"]) for entry in runs[retried.id])
    assert attempts == [(0, first.pid), (1, second.pid)]
    assert [entry["pid"] for entry in runs[once.id]] == [first.pid]  # never ran again
    assert once.id not in records.done()
    assert [info.id for info in broker.workers()] == [second.worker_id]
    assert second.terminate() == 0, second.log.text


# -- 2. redis-server restarted under flowing jobs --------------------------------------------

RESTARTS = ("kill", "stop", "kill", "stop")  #: SIGKILL or clean shutdown, then restart
FLOW_JOBS = 2500
FLOW_THREADS = 4


def test_jobs_survive_redis_restarts(server, spawn, client, broker, records) -> None:
    jobs = schedule_many(client, "record", FLOW_JOBS, pause=0.002)
    workers = [
        spawn(FLOW_THREADS, prefetch_limit=0, **PATIENT_LIVENESS, **QUICK_RECONNECT)
        for _ in range(2)
    ]

    for number, how in enumerate(RESTARTS, 1):
        progress = number * FLOW_JOBS // (len(RESTARTS) + 1)
        wait_until(lambda p=progress: records.done_count() >= p, f"{progress} jobs done")
        getattr(server, how)()
        server.restart()  # same port and directory: the append-only file is loaded
    records.wait_done({job.id for job in jobs})
    done_before_check = records.done_count()

    assert all(worker.alive for worker in workers)
    assert_each_worker_consumes(client, records, workers, FLOW_THREADS)  # after the restarts
    assert_settled(broker)
    runs = records.runs()
    assert all(job.id in runs for job in jobs)
    twice = duplicates(runs, jobs)
    outages = sum(w.log.text.count("cannot reach the broker") for w in workers)
    report(
        f"{len(RESTARTS)} Redis restarts under {FLOW_JOBS} jobs: {done_before_check} ran, "
        f"{twice} of them more than once; {outages} outage(s) logged by the workers"
    )
    for worker in workers:
        assert WORKER_DECLARED_DEAD not in worker.log.text
        assert JOB_RECOVERED not in worker.log.text
        assert worker.terminate() == 0, worker.log.text
    assert broker.workers() == []


# -- 3. client connections killed while jobs flow -------------------------------------------


class ConnectionKiller:
    """Kills every normal client connection (not pub/sub, not its own) every 50 ms."""

    def __init__(self, server: RedisServer):
        self._client = server.client()
        self._stop = threading.Event()
        self.rounds = 0
        self.killed = 0
        self._thread = threading.Thread(target=self._run, name="connection-killer")

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.killed += int(self._client.client_kill_filter(_type="normal"))
            except REDIS_ERRORS:
                continue
            self.rounds += 1

    def __enter__(self) -> ConnectionKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(DEADLINE)
        self._client.close()


def test_jobs_survive_killed_client_connections(server, spawn, client, broker, records) -> None:
    at_least_once = schedule_many(client, "record", 600, pause=0.002)
    at_most_once = schedule_many(client, "record_once", 600, pause=0.002)
    every = at_least_once + at_most_once

    with ConnectionKiller(server) as killer:
        workers = [
            spawn(FLOW_THREADS, prefetch_limit=0, **PATIENT_LIVENESS, **QUICK_RECONNECT)
            for _ in range(2)
        ]
        records.wait_done({job.id for job in every})

    assert killer.killed > 0
    assert all(worker.alive for worker in workers)
    assert_each_worker_consumes(client, records, workers, FLOW_THREADS)
    assert_settled(broker)
    runs = records.runs()
    assert all(len(runs[job.id]) == 1 for job in at_most_once)
    twice = duplicates(runs, at_least_once)
    report(
        f"{killer.killed} connections killed in {killer.rounds} rounds while "
        f"{len(every)} jobs ran: {twice} at-least-once job(s) ran more than once"
    )
    for worker in workers:
        assert JOB_RECOVERED not in worker.log.text
        assert worker.terminate() == 0, worker.log.text


# -- 4. malformed payloads pushed into a queue ----------------------------------------------


def test_malformed_payloads_become_dead_letters(server, spawn, client, broker, records) -> None:
    worker = spawn(2)
    queue = broker.queue_key(DEFAULT_QUEUE)
    unknown = Job("no.such.task", DEFAULT_QUEUE, 0, 0, id="unknown-task")
    late = Job("late", DEFAULT_QUEUE, 0, 0, id="late-task")
    bad = [
        ("rpush", b"not json at all", "payload is not valid JSON"),
        ("lpush", b'{"hello": "world"}', "payload has no 'id' field"),
        ("rpush", b"[1, 2, 3]", "payload is not a JSON object"),
        ("lpush", b"\xff\xfe\x00 not even utf-8", "payload is not valid JSON"),
        ("rpush", unknown.serialize().encode(), "unknown task 'no.such.task'"),
        ("rpush", late.serialize().encode(), "unknown task 'late'"),
    ]

    good = schedule_many(client, "record", 100)
    for method, payload, _ in bad:
        getattr(records.redis, method)(queue, payload)
    good += schedule_many(client, "record", 100)

    records.wait_done({job.id for job in good})
    wait_until(lambda: len(broker.list_dead_letters()) == len(bad), "the dead letters")
    letters = broker.list_dead_letters()
    by_payload = {letter.payload: letter for letter in letters}
    by_id = {letter.id: letter for letter in letters}
    for _, payload, reason in bad:
        # a job is dead-lettered as the engine decoded it; other payloads as they came
        text = payload.decode(errors="replace")
        letter = by_payload.get(text) or by_id[json.loads(payload)["id"]]
        assert letter.reason.startswith(reason), letter
        assert letter.queue == DEFAULT_QUEUE
    assert Job.deserialize(by_id["unknown-task"].payload) == unknown
    assert worker.alive
    runs = records.runs()
    assert all(len(runs[job.id]) == 1 for job in good)
    assert broker.running_jobs() == {}
    assert broker.queue_lengths() == {}

    listed = run_cli(server, "dead-letters", "list", APP, "--json")
    assert listed.returncode == 0, listed.stderr
    assert {(d["id"], d["reason"]) for d in json.loads(listed.stdout)} == {
        (letter.id, letter.reason) for letter in letters
    }
    lines = run_cli(server, "dead-letters", "list", APP)
    assert lines.returncode == 0, lines.stderr
    assert len(lines.stdout.splitlines()) == len(bad)
    assert "unknown task 'no.such.task'" in lines.stdout

    # A newer release knows the task 'late': its dead letter is retried and runs there.
    assert worker.terminate() == 0, worker.log.text
    newer = spawn(2, late_task=True)
    assert newer.worker_id
    retried = run_cli(server, "dead-letters", "retry", APP, "--id", "late-task")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout == f"Re-enqueued 1 dead letter(s) of namespace '{NAMESPACE}'\n"
    records.wait_done({"late-task"})
    assert "late-task" not in {letter.id for letter in broker.list_dead_letters()}
    assert len(broker.list_dead_letters()) == len(bad) - 1
    wait_until(lambda: broker.running_jobs() == {}, "the late task to be reported")
    assert newer.terminate() == 0, newer.log.text


# -- 5. a CPU-bound job does not make its worker look dead ------------------------------------


def test_a_cpu_bound_job_does_not_make_its_worker_look_dead(spawn, client, broker, records):
    workers = [spawn(1, **QUICK_LIVENESS) for _ in range(2)]
    for worker in workers:
        assert worker.worker_id
    seconds = 4 * QUICK_LIVENESS["dead_worker_threshold"]
    job = client.schedule("crunch", seconds)

    started = records.next_started()
    assert started["job"] == job.id
    records.wait_done({job.id})

    assert [entry["retries"] for entry in records.runs()[job.id]] == [0]  # exactly once
    assert_settled(broker)
    assert {info.id for info in broker.workers()} == {w.worker_id for w in workers}
    for worker in workers:
        assert WORKER_DECLARED_DEAD not in worker.log.text
        assert JOB_RECOVERED not in worker.log.text
        assert worker.terminate() == 0, worker.log.text


# -- 6. SIGTERM with jobs fetched but not started ----------------------------------------------


def test_sigterm_gives_back_the_jobs_fetched_but_not_started(spawn, client, broker, records):
    jobs = [client.build_job("record") for _ in range(3)]
    client.schedule_jobs(jobs)
    first = spawn(2, slow_thread_start=True)  # fetches 2 jobs its threads do not take yet

    wait_until(lambda: len(broker.running_jobs().get(first.worker_id, [])) == 2, "the first fetch")
    fetched = [job.id for job in broker.running_jobs()[first.worker_id]]
    assert sorted(fetched) == sorted(job.id for job in jobs[:2])
    assert first.terminate() == 0, first.log.text

    first.log.wait_for(re.escape("Giving back 2 job(s) fetched but not started"))
    first.log.wait_for(re.escape(f"Worker {first.worker_id} stopped"))
    assert "Starting job" not in first.log.text
    assert broker.workers() == []  # deregistered
    assert broker.running_jobs() == {}
    queued = [
        Job.deserialize(p).id for p in records.redis.lrange(broker.queue_key(DEFAULT_QUEUE), 0, -1)
    ]
    assert queued == [job.id for job in jobs]  # back at the front, in their order

    second = spawn(1)
    records.wait_done({job.id for job in jobs})
    runs = records.runs()
    assert [(runs[job.id][0]["pid"], len(runs[job.id])) for job in jobs] == [(second.pid, 1)] * 3
    assert all(runs[job.id][0]["retries"] == 0 for job in jobs)  # no retry counted
    assert_settled(broker)
    assert second.terminate() == 0, second.log.text


# -- 7. Redis stalled for longer than the dead-worker threshold ---------------------------------


def test_a_stalled_redis_does_not_make_live_workers_look_dead(
    server, spawn, client, broker, records
) -> None:
    workers = [spawn(1, **QUICK_LIVENESS) for _ in range(2)]
    jobs = [client.schedule("hold"), client.schedule("hold_once")]
    starts = {
        entry["job"]: entry["pid"] for entry in (records.next_started(), records.next_started())
    }
    assert sorted(starts.values()) == sorted(w.pid for w in workers)  # one job on each
    running_before = {w: sorted(j.id for j in js) for w, js in broker.running_jobs().items()}

    stall = 2.5 * QUICK_LIVENESS["dead_worker_threshold"]
    records.redis.client_pause(int(stall * 1000), all=True)  # every client waits, none fails
    records.redis.ping()  # answered once the pause is over
    resumed = time.time()
    wait_until(
        lambda: (
            all(info.last_heartbeat >= resumed for info in broker.workers())
            and len(broker.workers()) == 2
        ),
        "both workers to heartbeat after the stall",
    )

    running_after = {w: sorted(j.id for j in js) for w, js in broker.running_jobs().items()}
    assert running_after == running_before  # nothing was recovered from a live worker
    for job in jobs:
        records.release(job.id)
    records.wait_done({job.id for job in jobs})
    assert_settled(broker)
    runs = records.runs()
    assert [len(runs[job.id]) for job in jobs] == [1, 1]
    for worker in workers:
        assert WORKER_DECLARED_DEAD not in worker.log.text
        assert JOB_RECOVERED not in worker.log.text


def test_a_worker_back_from_its_own_silence_still_recovers_the_dead() -> None:
    """In process, on a fake clock: the check put off after the silence still comes."""
    clock = FakeClock(start=1_700_000_000.0)
    broker = MemoryBroker(clock=clock)
    engine = Engine(broker, namespace="silence")
    dead = broker.peer()
    dead.register_worker(WorkerInfo(id=dead.worker_id))
    engine.task(lambda: None, name="noop", max_retries=1)
    engine.schedule("noop")
    [lost] = dead.get_jobs_from_queue(DEFAULT_QUEUE, 1)
    recorder = SignalRecorder(engine.namespace)

    def step(seconds: float) -> None:
        """Move time on and wait for the round of the engine's arbiter that sees it."""
        now = clock.advance(seconds)
        broker.notify_local()
        wait_until(lambda: any(w.last_heartbeat == now for w in broker.workers()), "a heartbeat")

    engine.start_workers(number=1, block=False)
    try:
        step(3 * broker.dead_worker_threshold)  # silenced as long as the dead one
        step(broker.heartbeat_interval)  # the previous round, dead check included, is over
        assert [job.id for job in broker.running_jobs()[dead.worker_id]] == [lost.id]
        for _ in range(int(broker.dead_worker_threshold / broker.heartbeat_interval)):
            step(broker.heartbeat_interval)
        [finished] = recorder.wait_for_count("job_finished", 1)
        assert (finished.job_id, finished.retries) == (lost.id, 1)
    finally:
        engine.stop_workers()
        recorder.close()
