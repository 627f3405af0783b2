"""``spinach worker --processes N``: real worker processes on a Redis app, under a supervisor.

The apps are written to the test's directory: a job records the pid of the process that ran
it in Redis, so the test sees which child ran what. Every wait is for a log line or a Redis
reply (with a generous deadline as a safety net only); nothing is timed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from spinach import Engine, cli
from spinach.brokers.redis import RedisBroker
from spinach.supervisor import describe_status, restart_delay, worker_arguments
from tests.support.processes import LogReader

ROOT = Path(__file__).resolve().parent.parent
PROCESS_TIMEOUT = 60.0  #: seconds a process or a Redis reply gets before the test gives up
NAMESPACE = "supervised"
URL_VARIABLE = "SUPERVISOR_TEST_REDIS_URL"

APP = f'''"""Jobs record the pid of the worker process that ran them."""
import logging
import os

import redis

from spinach import Engine, RedisBroker

URL = os.environ["{URL_VARIABLE}"]
client = redis.Redis.from_url(URL, socket_timeout=None)  # redis-py 8: 5 s, < blpop 60 s
spin = Engine(RedisBroker(URL), namespace="{NAMESPACE}")
logger = logging.getLogger("supervised_app")


@spin.task(name="record")
def record(token: str) -> None:
    client.rpush("ran", f"{{token}} {{os.getpid()}}")


@spin.task(name="hold")
def hold() -> None:
    client.rpush("holding", os.getpid())
    logger.info("holding until released")
    if client.blpop(["release"], timeout=60) is None:
        raise TimeoutError("never released")
'''

CRASHING_APP = 'raise RuntimeError("configuration missing")\n'

STARTED = re.compile(r"Started worker process (\d+) of \d+ \(pid (\d+)\)")
ENGINE_STARTED = re.compile(r"Worker \w+ started: ")


class Supervised:
    """A ``spinach worker`` process started by a test, with its output."""

    def __init__(self, process: subprocess.Popen, log: LogReader):
        self.process = process
        self.log = log

    def child_pids(self) -> dict[int, list[int]]:
        """Pids of each worker process slot, in start order, from the supervisor's log."""
        pids: dict[int, list[int]] = {}
        for match in STARTED.finditer(self.log.text):
            pids.setdefault(int(match[1]), []).append(int(match[2]))
        return pids

    def wait(self) -> int:
        """The exit status, once the process and its output ended."""
        status = self.process.wait(PROCESS_TIMEOUT)
        self.log.join()
        return status


StartWorker = Callable[..., Supervised]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "supervised_app.py").write_text(APP)
    (tmp_path / "crashing_app.py").write_text(CRASHING_APP)
    return tmp_path


@pytest.fixture
def start_worker(app_dir: Path, redis_url: str) -> Iterator[StartWorker]:
    """Start ``python -m spinach worker ARGS`` in the apps' directory; clean up after."""
    started: list[Supervised] = []

    def start(*args: str) -> Supervised:
        env = {**os.environ, URL_VARIABLE: redis_url}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        process = subprocess.Popen(
            [sys.executable, "-m", "spinach", "worker", *args],
            cwd=app_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        started.append(Supervised(process, LogReader(process.stdout)))
        return started[-1]

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
        worker.process.wait(PROCESS_TIMEOUT)
        for pid in (pid for pids in worker.child_pids().values() for pid in pids):
            if _alive(pid) and b"spinach" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)  # a child the test started, left behind
        worker.process.stdout.close()
        worker.log.join()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, socket_timeout=PROCESS_TIMEOUT + 10) as connection:
        yield connection


@pytest.fixture
def spin(redis_url: str) -> Iterator[Engine]:
    """A client engine scheduling the jobs of the supervised app."""
    engine = Engine(RedisBroker(redis_url), namespace=NAMESPACE)

    @engine.task(name="record")
    def record(token: str) -> None: ...

    @engine.task(name="hold")
    def hold() -> None: ...

    yield engine
    engine.broker.stop()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie is dead); Linux's /proc tells."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _ran(client: redis.Redis, count: int) -> list[tuple[str, int]]:
    """The ``(token, pid)`` of ``count`` jobs of ``record``, waiting for each."""
    ran = []
    for _ in range(count):
        reply = client.blpop(["ran"], timeout=PROCESS_TIMEOUT)
        assert reply is not None, f"only {len(ran)} of {count} jobs ran"
        token, pid = reply[1].decode().split()
        ran.append((token, int(pid)))
    return ran


def _schedule_records(spin: Engine, count: int) -> None:
    for n in range(count):
        spin.schedule("record", f"job-{n}")


# -- processes ---------------------------------------------------------------------------


def test_children_run_the_jobs(start_worker, spin, client):
    worker = start_worker("supervised_app:spin", "--processes", "2", "--threads", "2")
    worker.log.wait_for(ENGINE_STARTED, count=2)
    pids = worker.child_pids()
    assert sorted(pids) == [1, 2]
    assert worker.process.pid not in (pids[1] + pids[2])

    _schedule_records(spin, 20)
    ran = _ran(client, 20)

    assert sorted(token for token, _ in ran) == sorted(f"job-{n}" for n in range(20))
    assert {pid for _, pid in ran} <= {pids[1][0], pids[2][0]}
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.log.text


def test_sigterm_stops_every_child_gracefully(start_worker, spin, client):
    worker = start_worker("supervised_app:spin", "--processes", "2", "--threads", "1")
    worker.log.wait_for(ENGINE_STARTED, count=2)
    spin.schedule("hold")
    reply = client.blpop(["holding"], timeout=PROCESS_TIMEOUT)
    assert reply is not None
    holder = int(reply[1])

    worker.process.send_signal(signal.SIGTERM)
    worker.log.wait_for("Received SIGTERM: forwarding it to 2 worker process")
    worker.log.wait_for("stopping gracefully", count=2)  # each child says so
    assert _alive(holder)  # still running its job
    client.rpush("release", "go")

    assert worker.wait() == 0, worker.log.text
    text = worker.log.text
    finished = re.search(r"Finished job \w+ of task 'hold' in [\d.]+ m?s: succeeded", text)
    assert finished, text
    assert text.index("Received SIGTERM") < finished.start()
    assert "supervisor exiting with status 0" in text
    assert "died unexpectedly" not in text
    assert not [pid for pids in worker.child_pids().values() for pid in pids if _alive(pid)]


def test_a_second_sigint_makes_the_children_quit_at_once(start_worker, spin, client):
    worker = start_worker("supervised_app:spin", "--processes", "2", "--threads", "1")
    worker.log.wait_for(ENGINE_STARTED, count=2)
    spin.schedule("hold")
    assert client.blpop(["holding"], timeout=PROCESS_TIMEOUT) is not None

    worker.process.send_signal(signal.SIGINT)
    worker.log.wait_for("stopping gracefully", count=2)
    worker.process.send_signal(signal.SIGINT)

    assert worker.wait() == cli.EXIT_INTERRUPTED, worker.log.text
    assert "Received SIGINT again: forwarding it" in worker.log.text
    assert "Received SIGINT again: exiting at once" in worker.log.text  # the holding child
    assert not [pid for pids in worker.child_pids().values() for pid in pids if _alive(pid)]


def test_a_killed_child_is_restarted(start_worker, spin, client):
    worker = start_worker("supervised_app:spin", "--processes", "2", "--threads", "2")
    worker.log.wait_for(ENGINE_STARTED, count=2)
    victim = worker.child_pids()[1][0]

    os.kill(victim, signal.SIGKILL)
    worker.log.wait_for(
        rf"Worker process 1 \(pid {victim}\) died unexpectedly with killed by SIGKILL "
        r"after [\d.]+s; restarting it in 0\.5s \(restart 1\)"
    )
    worker.log.wait_for(STARTED, count=3)
    worker.log.wait_for(ENGINE_STARTED, count=3)
    replacement = worker.child_pids()[1][1]
    assert replacement != victim
    assert not _alive(victim)

    _schedule_records(spin, 10)
    assert {pid for _, pid in _ran(client, 10)} <= {replacement, worker.child_pids()[2][0]}
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.log.text
    assert not [pid for pids in worker.child_pids().values() for pid in pids if _alive(pid)]


def test_a_child_crashing_at_import_is_restarted_ever_more_slowly(start_worker):
    worker = start_worker("crashing_app:spin", "--processes", "2")

    restarts = worker.log.wait_for(
        r"Worker process 1 \(pid \d+\) died unexpectedly with exit status 2 after [\d.]+s; "
        r"restarting it in ([\d.]+)s \(restart (\d)\)",
        count=3,
    )
    assert [(m[1], m[2]) for m in restarts[:3]] == [("0.5", "1"), ("1.0", "2"), ("2.0", "3")]
    assert "cannot import module 'crashing_app': RuntimeError: configuration missing" in (
        worker.log.text
    )
    # both children waiting out a delay of 2 s, none about to crash under the SIGTERM
    worker.log.wait_for(r"Worker process \d .*restarting it in 2\.0s \(restart 3\)", count=2)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.log.text  # stopped on request: children were waiting
    assert not [pid for pids in worker.child_pids().values() for pid in pids if _alive(pid)]


def test_children_that_stop_on_their_own_are_not_restarted(start_worker, spin, client):
    _schedule_records(spin, 10)

    worker = start_worker(
        "supervised_app:spin", "--processes", "2", "--threads", "2", "--stop-when-queue-empty"
    )

    assert worker.wait() == 0, worker.log.text
    assert worker.log.text.count("ended with exit status 0 on its own: not restarted") == 2
    assert "restarting" not in worker.log.text
    assert sorted(token for token, _ in _ran(client, 10)) == sorted(f"job-{n}" for n in range(10))


def test_one_process_runs_without_a_supervisor(start_worker, spin, client):
    _schedule_records(spin, 3)

    worker = start_worker("supervised_app:spin", "--processes", "1", "--stop-when-queue-empty")

    assert worker.wait() == 0, worker.log.text
    assert "spinach.supervisor" not in worker.log.text
    assert {pid for _, pid in _ran(client, 3)} == {worker.process.pid}


# -- pieces ------------------------------------------------------------------------------


def test_children_get_the_supervisors_worker_options():
    argv = [
        "worker", "app:spin", "--processes", "3", "--threads", "7", "-q", "high", "-q", "low",
        "--namespace", "billing", "--log-level", "debug", "--stop-when-queue-empty", "--asyncio",
    ]  # fmt: skip
    parser = cli.build_parser()
    args = parser.parse_args(argv)

    child = parser.parse_args(["worker", *worker_arguments(args)])

    assert child.processes == 1
    assert {**vars(child), "processes": 3} == vars(args)


def test_children_get_the_defaults_when_no_option_is_given():
    parser = cli.build_parser()
    args = parser.parse_args(["worker", "app", "-p", "2"])

    child = parser.parse_args(["worker", *worker_arguments(args)])

    assert {**vars(child), "processes": 2} == vars(args)


def test_restart_delay_doubles_up_to_its_cap():
    delays = [restart_delay(n, base=0.5, cap=5.0) for n in range(1, 7)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_describe_status():
    assert describe_status(2) == "exit status 2"
    assert describe_status(-signal.SIGKILL) == "killed by SIGKILL"


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_processes_must_be_a_positive_integer(value, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["worker", "app", "--processes", value])

    assert exc.value.code == 2
    assert "--processes" in capsys.readouterr().err


RECYCLING_CHILD = """
import os, sys
from spinach.supervisor import READY, report_status
report_status(READY)
marker = sys.argv[1]
if not os.path.exists(marker):
    open(marker, "w").close()
    sys.exit(155)  # reached a limit of its own: asks to be replaced
"""


def test_a_child_exiting_with_the_recycle_status_is_replaced_at_once(tmp_path, caplog):
    from spinach.supervisor import Supervisor

    ready = []
    command = [sys.executable, "-c", RECYCLING_CHILD, str(tmp_path / "marker")]
    supervisor = Supervisor(
        command, 1, recycle_status=155, status_pipes=True, on_ready=lambda: ready.append(1),
        cwd=str(ROOT), base_delay=60.0,  # a restart after a backoff would time the test out
    )  # fmt: skip

    with caplog.at_level("INFO", logger="spinach.supervisor"):
        assert supervisor.run() == 0

    assert ready == [1]
    assert "reached its limit and exited: replacing it" in caplog.text
    assert "ended with exit status 0 on its own" in caplog.text
    assert caplog.text.count("Started worker process 1 of 1") == 2
