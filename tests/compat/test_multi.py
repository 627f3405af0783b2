"""``spinach-compat multi``: Celery's node naming (compared with real ``celery multi``), and
real detached workers started, listed, restarted and stopped through their pidfiles."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from spinach_compat.bin.nodes import NodeError, build_nodes, parse_words

from ..helpers import wait_until
from .worker_process import ROOT

DB = 12
HOST = socket.gethostname()


def multi(*args: str, impl: str = "spinach_compat", url: str = "memory://"):
    env = {**os.environ, "PROJ_IMPL": impl, "PROJ_BROKER_URL": url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", impl, "multi", *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip


#: Argument sets of ``multi names`` and ``multi expand``, compared with real ``celery multi``.
NAMING_ARGS = [
    ["w1", "w2"], ["3"], ["3", "--range-prefix=worker"], ["2", "--hostname=example.com"],
    ["foo@%h", "bar@example.com"], ["image", "video", "--prefix=x-", "--suffix=h.org"],
]  # fmt: skip
TEMPLATE = "%n|%h|%d|%N|%p|%i%I|%%"


def _naming_outputs(impl: str) -> list[tuple[int, str]]:
    """``IMPL multi names ARGS`` then ``IMPL multi expand TEMPLATE ARGS`` for each set of
    ``NAMING_ARGS``: ``[status, stdout]`` each, all run in one process (tests.compat.cli_batch)."""
    commands = [c for a in NAMING_ARGS for c in (["multi", "names", *a],
                                                 ["multi", "expand", TEMPLATE, *a])]  # fmt: skip
    env = {**os.environ, "PROJ_IMPL": impl, "PROJ_BROKER_URL": "memory://", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.compat.cli_batch", impl], input=json.dumps(commands),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [tuple(pair) for pair in json.loads(done.stdout)]


@pytest.fixture(scope="module")
def naming_outputs() -> dict[str, list[tuple[int, str]]]:
    """The facade's and Celery's outputs of every naming command (two processes in all)."""
    return {impl: _naming_outputs(impl) for impl in ("spinach_compat", "celery")}


@pytest.mark.parametrize("index", range(len(NAMING_ARGS)), ids=[" ".join(a) for a in NAMING_ARGS])
def test_node_names_as_celery(naming_outputs, index):
    ours, theirs = (naming_outputs[impl][2 * index : 2 * index + 2]
                    for impl in ("spinach_compat", "celery"))  # fmt: skip
    assert ours == theirs


def test_per_node_options():
    words = ["5", "-A", "proj", "-c", "3", "-c:1-3", "10", "-Q:4,5", "data", "--", "--extra"]
    nodes = build_nodes(parse_words(words))
    assert [n.name for n in nodes] == [f"celery{i}@{HOST}" for i in range(1, 6)]
    assert [n.options["-c"] for n in nodes] == ["10", "10", "10", "3", "3"]
    assert [n.options.get("-Q") for n in nodes] == [None, None, None, "data", "data"]
    assert nodes[0].argv() == [
        "-m", "spinach_compat", "-A", "proj", "worker", "-n", f"celery1@{HOST}",
        "--pidfile=/var/run/celery/celery1.pid", "--logfile=/var/log/celery/celery1.log",
        "-c", "10", "--extra",
    ]  # fmt: skip
    named = build_nodes(parse_words(["a", "b", "-c", "1", "-c:b", "4", "-c:1", "2"]))
    assert [n.options["-c"] for n in named] == ["2", "4"]
    appended = build_nodes(parse_words(["a", "--append=-l info", "--", "-O", "fair"]))
    assert appended[0].argv()[-4:] == ["-O", "fair", "-l", "info"]
    with pytest.raises(NodeError, match="--cmd is not supported"):
        build_nodes(parse_words(["a", "--cmd=celery worker"]))
    with pytest.raises(NodeError, match="no node at index '3'"):
        build_nodes(parse_words(["a", "b", "-c:3", "4"]))


def test_bad_command_prints_the_usage():
    done = multi("frobnicate")
    assert done.returncode == 1 and "Invalid command: frobnicate" in done.stderr
    assert "multi start <node1 node2 nodeN|count>" in done.stdout


@pytest.fixture
def cluster(redis_server, tmp_path):
    """``multi`` over ``tests.compat.proj`` with pidfiles and logfiles in ``tmp_path``."""
    url = redis_server.url_for(DB)
    with redis_server.client(db=DB) as client:
        client.flushdb()
    files = [f"--pidfile={tmp_path}/%n.pid", f"--logfile={tmp_path}/%n%I.log"]

    def run(command: str, *args: str) -> subprocess.CompletedProcess:
        return multi(command, *args, "-A", "tests.compat.proj", *files, url=url)

    yield run, tmp_path
    run("kill", "w1", "w2", "w3")  # whatever a failed test left running


def _pids(tmp_path, *names: str) -> list[int]:
    return [int((tmp_path / f"{name}.pid").read_text()) for name in names]


def _status(redis_server) -> str:
    env = {**os.environ, "PROJ_BROKER_URL": redis_server.url_for(DB), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "spinach_compat", "-A", "tests.compat.proj", "status"], cwd=ROOT,
        env=env, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip


def test_start_restart_and_stopwait_real_workers(cluster, redis_server):
    run, tmp_path = cluster
    started = run("start", "w1", "w2", "-c", "1")
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"\t> w1@{HOST}: OK\n\t> w2@{HOST}: OK\n" in started.stdout
    first = _pids(tmp_path, "w1", "w2")
    both = f"->  w1@{HOST}: OK\n->  w2@{HOST}: OK\n\n2 nodes online."
    assert wait_until(lambda: both in _status(redis_server))  # started, answering
    # A node answers pings from the start of its consumer, as Celery's does: worker_ready
    # (which prints the marker) may come a moment after.
    assert wait_until(lambda: "PROJ-READY" in (tmp_path / "w1.log").read_text())

    restarted = run("restart", "w1", "w2", "-c", "1")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert f"> Restarting node w1@{HOST}: OK" in restarted.stdout
    second = _pids(tmp_path, "w1", "w2")
    assert not set(first) & set(second)
    assert not any(_running(pid) for pid in first)
    assert wait_until(lambda: both in _status(redis_server))

    stopped = run("stopwait", "w1", "w2", "w3")
    assert stopped.returncode == 0
    assert f"> w3@{HOST}: DOWN" in stopped.stdout
    assert f"\t> w1@{HOST}: TERM -> {second[0]}" in stopped.stdout
    assert not any(_running(pid) for pid in second)
    assert not list(tmp_path.glob("*.pid"))  # each worker removed its own
    assert "SIGTERM received: warm shutdown" in (tmp_path / "w2.log").read_text()


def test_a_node_failing_to_start_is_reported(cluster):
    run, tmp_path = cluster
    done = run("start", "w1", "-P", "eventlet")
    assert done.returncode == 1
    assert f"\t> w1@{HOST}: * Child terminated with exit code 2" in done.stdout
    assert done.stdout.rstrip().endswith("FAILED")
    assert "-P eventlet" in (tmp_path / "w1.log").read_text()


def test_stop_of_nodes_not_running(cluster, tmp_path):
    run, _ = cluster
    (tmp_path / "w1.pid").write_text("999999999\n")  # stale: no such process
    done = run("stop", "w1", "w2")
    assert done.returncode == 0
    assert "Could not signal w1@" in done.stdout and f"> w2@{HOST}: DOWN" in done.stdout


def _running(pid: int) -> bool:
    from spinach_compat.bin.cluster import alive

    return alive(pid)
