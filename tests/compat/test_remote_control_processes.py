"""Celery's remote control of facade worker processes on Redis: real Celery's client and
ours get their replies, the CLI runs the commands, prefork pools grow, shutdown exits 0.

Each wait is for a line of the worker's output or a reply (with a deadline as a safety net).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import spinach_compat
from tests.support.processes import LogReader

from ..helpers import wait_until
from .worker_process import project_worker

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0
URL_VARIABLE = "REMOTE_TEST_URL"
DB = 11

PROJECT = f'''"""A project with a custom inspect command and a raising control command."""
import os

from spinach_compat import Celery, signals
from spinach_compat.worker.control import control_command, inspect_command

app = Celery("remote", broker=os.environ["{URL_VARIABLE}"], backend=os.environ["{URL_VARIABLE}"])
app.conf.update(broker_connection_retry_on_startup=True, worker_redirect_stdouts=False)


@app.task(name="add")
def add(a, b):
    return a + b


@inspect_command()
def current_queues(state):
    """The queues this node consumes."""
    return {{"ok": state.consumer.queues()}}


@control_command(args=[("n", int)], signature="[N=1]")
def explode(state, n=1):
    raise RuntimeError(f"exploded {{n}}")


@signals.worker_ready.connect
def _ready(sender=None, **kwargs):
    os.write(1, b"REMOTE-READY\\n")
'''


class Node:
    """A ``spinach-compat worker`` process of the project."""

    def __init__(self, process: subprocess.Popen, log: LogReader, name: str):
        self.process, self.log, self.name = process, log, name

    def wait(self) -> int:
        status = self.process.wait(TIMEOUT)
        self.log.join()
        return status


@pytest.fixture
def project(tmp_path: Path, redis_server) -> tuple[Path, str]:
    (tmp_path / "remote_app.py").write_text(PROJECT)
    url = redis_server.url_for(DB)
    with redis_server.client(db=DB) as client:
        client.flushdb()
    return tmp_path, url


def _environment(url: str) -> dict[str, str]:
    env = {**os.environ, URL_VARIABLE: url}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


@pytest.fixture
def start_node(project) -> Iterator:
    where, url = project
    started: list[Node] = []

    def start(name: str, *args: str) -> Node:
        command = [sys.executable, "-m", "spinach_compat", "-A", "remote_app", "worker",
                   "-n", name, *args]  # fmt: skip
        process = subprocess.Popen(
            command, cwd=where, env=_environment(url), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        node = Node(process, LogReader(process.stdout), name)
        started.append(node)
        node.log.wait_for("REMOTE-READY")
        return node

    yield start
    for node in started:
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGTERM)
        node.wait()
        assert node.process.stdout is not None
        node.process.stdout.close()


def _cli(project, *args: str) -> subprocess.CompletedProcess:
    where, url = project
    return subprocess.run(
        [sys.executable, "-m", "spinach_compat", "-A", "remote_app", *args], cwd=where,
        env=_environment(url), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip


def _celery_client(url: str):
    import celery

    return celery.Celery("client", broker=url, set_as_current=False)


def test_real_celerys_client_ours_and_the_cli_get_the_replies(project, start_node):
    _, url = project
    node = start_node("threads@test", "-P", "threads", "-c", "2")
    ours = spinach_compat.Celery("remote", broker=url, backend=url, set_as_current=False)
    results = [ours.send_task("add", (i, 1)) for i in range(3)]
    assert [r.get(timeout=TIMEOUT) for r in results] == [1, 2, 3]
    theirs = _celery_client(url).control.inspect(destination=[node.name], timeout=5)
    assert theirs.ping() == {node.name: {"ok": "pong"}}
    assert theirs.registered() == {node.name: ["add"]}
    stats = theirs.stats()[node.name]
    assert stats["total"] == {"add": 3} and stats["pool"]["max-concurrency"] == 2
    assert ours.control.inspect().stats()[node.name]["total"] == {"add": 3}
    custom = _celery_client(url).control.broadcast(
        "current_queues", destination=[node.name], reply=True, timeout=5
    )
    assert custom == [{node.name: {"ok": ["celery"]}}]
    [exploded] = ours.control.broadcast("explode", {"n": 2}, reply=True)
    assert exploded == {node.name: {"error": "RuntimeError('exploded 2')"}}
    assert ours.send_task("add", (2, 2)).get(timeout=TIMEOUT) == 4  # still running jobs
    # the command line, as Celery's
    pinged = _cli(project, "inspect", "ping", "-d", node.name)
    assert pinged.returncode == 0, pinged.stderr
    assert pinged.stdout.splitlines()[:2] == [f"->  {node.name}: OK", "        pong"]
    added = _cli(project, "control", "--json", "add_consumer", "extra")
    assert json.loads(added.stdout) == [{node.name: {"ok": "add consumer extra"}}]
    queues = _cli(project, "inspect", "--json", "current_queues")
    assert json.loads(queues.stdout) == {node.name: {"ok": ["celery", "extra"]}}
    stopped = _cli(project, "control", "shutdown", "-t", "0.5")
    assert stopped.returncode == 69  # as Celery's workers, it does not reply
    assert node.wait() == 0


def test_prefork_pool_grows_and_shrinks_remotely(project, start_node):
    _, url = project
    node = start_node("pool@test", "-P", "prefork", "-c", "1")
    ours = spinach_compat.Celery("remote", broker=url, backend=url, set_as_current=False)
    [grown] = ours.control.pool_grow(1, reply=True)
    assert grown == {node.name: {"ok": "pool will grow"}}

    def processes() -> int:
        stats = ours.control.inspect(destination=node.name).stats() or {}
        return len(stats.get("pool", {}).get("processes", []))

    assert wait_until(lambda: processes() == 2, TIMEOUT)
    stats = ours.control.inspect(destination=node.name).stats()
    assert stats["prefetch_count"] == 2  # a prefork child holds no job ahead
    assert ours.send_task("add", (1, 1)).get(timeout=TIMEOUT) == 2
    assert ours.control.pool_shrink(1, reply=True) == [{node.name: {"ok": "pool will shrink"}}]
    assert wait_until(lambda: processes() == 1, TIMEOUT)
    [added] = ours.control.add_consumer("extra", reply=True)
    assert added == {node.name: {"ok": "add consumer extra"}}
    assert ours.send_task("add", (2, 3), queue="extra").get(timeout=TIMEOUT) == 5
    ours.control.shutdown(destination=[node.name])
    assert node.wait() == 0


def test_reply_shapes_match_a_real_celery_worker(redis_server, tmp_path, start_node, project):
    """The same keys; the same ``prefetch_count`` (the multiplier times the concurrency)."""
    facade = start_node("shape@test", "-P", "threads", "-c", "2", "--prefetch-multiplier", "3")
    _, url = project
    ours = spinach_compat.Celery("remote", broker=url, set_as_current=False)
    our_stats = ours.control.inspect(destination=facade.name).stats()
    args = ["-c", "2", "--prefetch-multiplier", "3", "-n", "real@%h"]  # and -P threads
    with project_worker("celery", redis_server, DB + 1, tmp_path / "celery.log", args) as (
        _worker,
        celery_url,
    ):
        client = _celery_client(celery_url).control.inspect(timeout=5, limit=1)
        assert wait_until(client.ping, TIMEOUT)  # Celery's worker is ready before it listens
        [(name, their_stats)] = client.stats().items()
        assert client.ping() == {name: {"ok": "pong"}}
        their_queues = client.active_queues()[name]
    assert set(our_stats) == set(their_stats)
    assert set(our_stats["pool"]) == set(their_stats["pool"])
    assert our_stats["pool"]["implementation"] == their_stats["pool"]["implementation"]
    assert our_stats["prefetch_count"] == their_stats["prefetch_count"] == 6
    our_queues = ours.control.inspect(destination=facade.name).active_queues()
    assert set(our_queues[0]) == set(their_queues[0])


@pytest.mark.parametrize("impl", ["celery", "spinach_compat"])
def test_inspect_active_safe_shows_the_reprs_as_a_real_celery_worker(impl, redis_server, tmp_path):
    """``inspect().active(safe=True)`` of a worker running a task sent with ``argsrepr``:
    the texts in place of the arguments; without ``safe``, the arguments. The same lines
    for a real Celery worker and the facade's."""
    args = ["-P", "threads", "-c", "1", "-n", f"{impl}@%h"]
    with project_worker(impl, redis_server, 15, tmp_path / "w.log", args) as (_, url):
        app = (_celery_client(url) if impl == "celery"  # the facade's namespace: the app's
               else spinach_compat.Celery("proj", broker=url, set_as_current=False))  # fmt: skip
        name = "tests.compat.proj.tasks.hold"
        result = app.send_task(name, ("release-me",), {"seconds": 30}, argsrepr="(<key>,)")
        inspect = app.control.inspect(timeout=5, limit=1)
        assert wait_until(lambda: any((inspect.active() or {}).values()), TIMEOUT)
        [plain] = [task for tasks in inspect.active().values() for task in tasks]
        [safe] = [task for tasks in inspect.active(safe=True).values() for task in tasks]
        with redis_server.client(db=15) as client:
            client.set("release-me", 1)
    assert (plain["id"], plain["args"], plain["kwargs"]) == (
        result.id,
        ["release-me"],
        {"seconds": 30},
    )
    assert (safe["args"], safe["kwargs"]) == ("(<key>,)", "{'seconds': 30}")


@pytest.mark.parametrize("impl", ["celery", "spinach_compat"])
def test_inspect_reserved_lists_the_prefetched_tasks_as_a_real_celery_worker(
    impl, redis_server, tmp_path, monkeypatch
):
    """A worker of one thread with ``--prefetch-multiplier 3`` running a task that holds:
    the two sent after it are reserved (not acknowledged, no worker pid, not started), not
    active. Short tasks run first: the facade holds tasks only while they are short (here
    shorter than a minute on average, whatever the machine's load)."""
    monkeypatch.setenv("PROJ_PREFETCH_SHORT_JOB", "60")
    args = ["-P", "threads", "-c", "1", "--prefetch-multiplier", "3", "-n", f"{impl}@%h"]
    with project_worker(impl, redis_server, 15, tmp_path / "w.log", args) as (_, url):
        app = (_celery_client(url) if impl == "celery"
               else spinach_compat.Celery("proj", broker=url, set_as_current=False))  # fmt: skip
        for n in range(40):  # the first ones are slower (connections): a mean to forget
            app.send_task("tests.compat.proj.tasks.add", (n, n))
        hold = "tests.compat.proj.tasks.hold"
        running = app.send_task(hold, ("release-me",))
        behind = [app.send_task(hold, ("release-me",), {"seconds": n}) for n in (20, 21)]
        inspect = app.control.inspect(timeout=5, limit=1)
        seen: dict[str, list] = {}

        def settled() -> bool:  # both read together: a reply may time out on a busy machine
            seen["held"] = [t for ts in (inspect.reserved() or {}).values() for t in ts]
            seen["active"] = [t["id"] for ts in (inspect.active() or {}).values() for t in ts]
            # the held ones by id: a busy real Celery worker may still list a short task
            # that ended as reserved for a moment
            held_ids = sorted(t["id"] for t in seen["held"])
            return held_ids == sorted(r.id for r in behind) and seen["active"] == [running.id]

        assert wait_until(settled, TIMEOUT), seen
        held = seen["held"]
        with redis_server.client(db=15) as client:
            client.set("release-me", 1)
    assert sorted(t["id"] for t in held) == sorted(r.id for r in behind)
    assert {(t["acknowledged"], t["worker_pid"], t["time_start"]) for t in held} == {
        (False, None, None)
    }
    assert sorted(t["kwargs"]["seconds"] for t in held) == [20, 21]
    assert {t["args"][0] for t in held} == {"release-me"}
