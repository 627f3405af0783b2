"""``spinach-compat worker -P prefork``: real child processes under the supervisor.

The project is written to the test's directory: each job records the pid of the process
that ran it in Redis, so the test sees which child ran what. Every wait is for a log line or
a Redis reply (with a generous deadline as a safety net only); nothing is timed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.support.processes import LogReader

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0  #: seconds a process or a Redis reply gets before the test gives up
URL_VARIABLE = "PREFORK_TEST_URL"

APP = f'''"""Jobs record the pid of the child process that ran them."""
import os

import redis

from spinach_compat import Celery, signals

URL = os.environ["{URL_VARIABLE}"]
client = redis.Redis.from_url(URL, socket_timeout=90)  # blpop waits up to 60 s
app = Celery("prefork", broker=URL, backend=URL)
app.conf.update(broker_connection_retry_on_startup=True, worker_redirect_stdouts=False)
app.conf.worker_concurrency = int(os.environ.get("PREFORK_CONCURRENCY", "0")) or None
broker = app.engine.broker  # a killed child's job is recovered within seconds
broker.heartbeat_interval, broker.dead_worker_threshold = 0.5, 2.0
broker.dead_worker_check_interval = 0.5
_kept = []


@app.task(name="record")
def record(token):
    client.rpush("ran", f"{{token}} {{os.getpid()}}")


@app.task(name="gather")
def gather(token, expected):
    """CPU-bound: spins until ``expected`` jobs of it run at once."""
    client.rpush("gathered", f"{{token}} {{os.getpid()}}")
    spins = 0
    while client.llen("gathered") < expected:
        spins += sum(range(1000))
    return spins


@app.task(name="grow")
def grow(token, mib):
    """Leaves its process ``mib`` MiB bigger (resident: every page written)."""
    _kept.append(b"x" * (mib << 20))
    client.rpush("ran", f"{{token}} {{os.getpid()}}")


@app.task(name="hold")
def hold(token):
    client.rpush("holding", f"{{token}} {{os.getpid()}}")
    client.rpush("ran", f"{{token}} {{os.getpid()}}")
    if client.blpop(["release"], timeout=60) is None:
        raise TimeoutError("never released")


@signals.worker_ready.connect
def _ready(sender=None, **kwargs):
    os.write(1, b"PREFORK-READY\\n")
'''

STARTED = re.compile(r"Started worker process (\d+) of \d+ \(pid (\d+)\)")
CHILD_READY = re.compile(r"Worker \S+ started: 1 ThreadWorkers")


class Pool:
    """A ``spinach-compat worker`` process started by a test, with its output."""

    def __init__(self, process: subprocess.Popen, log: LogReader):
        self.process = process
        self.log = log

    def child_pids(self) -> list[int]:
        """Pids of every child started, in start order, from the supervisor's log."""
        return [int(match[2]) for match in STARTED.finditer(self.log.text)]

    def stop(self) -> int:
        """SIGTERM (warm shutdown); the exit status once the output ended."""
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(TIMEOUT)
        self.log.join()
        return status


StartPool = Callable[..., Pool]


@pytest.fixture
def start_pool(tmp_path: Path, redis_url: str) -> Iterator[StartPool]:
    """Start ``python -m spinach_compat -A prefork_app worker ARGS``; clean up after."""
    (tmp_path / "prefork_app.py").write_text(APP)
    started: list[Pool] = []

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> Pool:
        environ = {**os.environ, URL_VARIABLE: redis_url, **(env or {})}
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get(
            "PYTHONPATH")]))  # fmt: skip
        command = [sys.executable, "-m", "spinach_compat", "-A", "prefork_app", "worker", *args]
        process = subprocess.Popen(
            command, cwd=tmp_path, env=environ, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        started.append(Pool(process, LogReader(process.stdout)))
        if ready:
            started[-1].log.wait_for("PREFORK-READY")
        return started[-1]

    yield start
    for pool in started:
        if pool.process.poll() is None:
            pool.process.kill()
        pool.process.wait(TIMEOUT)
        for pid in pool.child_pids():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)  # a child the test started, left behind
        assert pool.process.stdout is not None
        pool.process.stdout.close()
        pool.log.join()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, socket_timeout=TIMEOUT + 10) as connection:
        yield connection


@pytest.fixture
def app(redis_url: str):
    """A client app sending the jobs of the project by name."""
    import spinach_compat

    return spinach_compat.Celery("prefork", broker=redis_url, backend=redis_url,
                                 set_as_current=False)  # fmt: skip


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie is dead); Linux's /proc tells."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _popped(client: redis.Redis, key: str, count: int) -> list[tuple[str, int]]:
    """``count`` ``(token, pid)`` entries of the list ``key``, waiting for each."""
    entries = []
    for _ in range(count):
        reply = client.blpop([key], timeout=TIMEOUT)
        assert reply is not None, f"only {len(entries)} of {count} entries in {key!r}: {entries}"
        token, pid = reply[1].decode().split()
        entries.append((token, int(pid)))
    return entries


# -- processes ---------------------------------------------------------------------------


def test_prefork_runs_a_job_in_each_child_at_once(start_pool, app, client):
    pool = start_pool("-P", "prefork", "-c", "3", "-l", "info")
    assert "concurrency: 3 (prefork: child processes, one task each)" in pool.log.text

    results = [app.send_task("gather", args=(f"job-{n}", 3)) for n in range(3)]

    assert all(result.get(timeout=TIMEOUT) >= 0 for result in results)
    pids = {pid for _, pid in _popped(client, "gathered", 3)}
    assert len(pids) == 3 and pids <= set(pool.child_pids())
    assert pool.process.pid not in pids
    assert pool.stop() == 0, pool.log.text


def test_prefork_is_the_default_pool_sized_by_worker_concurrency(start_pool, app, client):
    pool = start_pool("-l", "info", env={"PREFORK_CONCURRENCY": "2"})

    assert "concurrency: 2 (prefork: child processes, one task each)" in pool.log.text
    assert len(pool.child_pids()) == 2
    assert pool.stop() == 0, pool.log.text


def test_max_tasks_per_child_replaces_children_and_runs_every_job_once(start_pool, app, client):
    pool = start_pool("-c", "3", "--max-tasks-per-child", "2", "-l", "info")

    for n in range(10):
        app.send_task("record", args=(f"job-{n}",))
    ran = _popped(client, "ran", 10)

    assert sorted(token for token, _ in ran) == sorted(f"job-{n}" for n in range(10))
    counts = Counter(pid for _, pid in ran)
    assert max(counts.values()) <= 2 and len(counts) >= 5
    full = sum(1 for count in counts.values() if count == 2)
    pool.log.wait_for("reached its limit and exited: replacing it", count=full)
    assert pool.stop() == 0, pool.log.text
    assert client.llen("ran") == 0  # nothing ran twice
    assert "died unexpectedly" not in pool.log.text


def test_max_memory_per_child_replaces_a_child_that_grew(start_pool, app, client):
    pool = start_pool("-c", "1", "--max-memory-per-child", "250000", "-l", "info")
    first = pool.child_pids()[0]

    app.send_task("record", args=("small",)).get(timeout=TIMEOUT)
    app.send_task("grow", args=("big", 300)).get(timeout=TIMEOUT)
    app.send_task("record", args=("after",)).get(timeout=TIMEOUT)

    ran = dict(_popped(client, "ran", 3))
    assert ran["small"] == ran["big"] == first
    assert ran["after"] != first
    assert re.search(r"uses \d+ KiB of resident memory \(--max-memory-per-child 250000\)",
                     pool.log.text)  # fmt: skip
    assert pool.stop() == 0, pool.log.text


def test_a_child_killed_mid_job_has_its_job_run_again(start_pool, app, client):
    pool = start_pool("-c", "1", "-l", "info")
    result = app.send_task("hold", args=("held",))
    [(_, victim)] = _popped(client, "holding", 1)

    os.kill(victim, signal.SIGKILL)
    pool.log.wait_for(rf"\(pid {victim}\) died unexpectedly with killed by SIGKILL")
    [(token, again)] = _popped(client, "holding", 1)  # recovered, then run by the new child
    client.rpush("release", "go")

    assert result.get(timeout=TIMEOUT) is None
    assert token == "held" and again != victim and again in pool.child_pids()
    assert pool.stop() == 0, pool.log.text


def test_autoscale_grows_under_load_and_shrinks_when_idle(start_pool, app, client):
    pool = start_pool("--autoscale", "4,1", "-l", "info", env={"AUTOSCALE_KEEPALIVE": "0.5"})
    assert "concurrency: 1 to 4, autoscaled (prefork" in pool.log.text
    assert len(pool.child_pids()) == 1

    for n in range(6):
        app.send_task("hold", args=(f"job-{n}",))
    holders = {pid for _, pid in _popped(client, "holding", 4)}  # four at once
    assert len(holders) == 4
    assert "Scaling up" in pool.log.text

    client.rpush("release", *["go"] * 6)
    _popped(client, "holding", 2)
    pool.log.wait_for(r"Worker process \d \(pid \d+\) retired", count=3)
    assert "Scaling down" in pool.log.text
    assert pool.stop() == 0, pool.log.text


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-P", "prefork", "-c", "0"], "-c/--concurrency: must be 1 or more, not 0"),
        (["-c", "-2"], "must be 1 or more"),
        (["-P", "tornado"], "unknown pool 'tornado': use prefork"),
        (["-P", "eventlet"], "eventlet is deprecated by Celery"),
        (["-P", "gevent"], "gevent is planned but not supported yet"),
        (["--max-memory-per-child", "abc"], "--max-memory-per-child: expected a whole number"),
        (["--max-tasks-per-child", "-1"], "must be 0 (no limit) or more"),
        (["--autoscale", "4,x"], "--autoscale: expected MAX,MIN"),
        (["-P", "threads", "--max-tasks-per-child", "5"], "not -P threads: remove it"),
    ],
)
def test_bad_pool_options_are_usage_errors(start_pool, args, named):
    pool = start_pool(*args, ready=False)

    assert pool.process.wait(TIMEOUT) == 2
    pool.log.join()
    assert named in pool.log.text
    assert "Traceback" not in pool.log.text
