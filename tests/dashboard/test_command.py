"""``spinach dashboard``: the command serves the dashboard of an application's namespace."""

from __future__ import annotations

import json
import signal
import sys
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.processes import StartedProcesses
from tests.support.redis_server import RedisServer, free_port
from tests.test_cli import APPS, PROCESS_TIMEOUT, _env, run_spinach


@pytest.fixture
def processes() -> Iterator[StartedProcesses]:
    started = StartedProcesses()
    yield started
    started.end_all(PROCESS_TIMEOUT)


def test_dashboard_serves_a_redis_broker_given_by_url(processes):
    with RedisServer(password="hunter2") as server:
        port = free_port()
        command = [sys.executable, "-m", "spinach", "dashboard", "basic:spin", "--port",
                   str(port), "--broker", server.url, "--namespace", "cli"]  # fmt: skip
        process, log = processes.start(command, cwd=APPS, env=_env())
        assert log.contains(f": http://127.0.0.1:{port}/ (read-only)"), log.text
        assert "hunter2" not in log.text and ":**@127.0.0.1" in log.text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/overview", timeout=10) as r:
            assert json.load(r)["workers_alive"] == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(PROCESS_TIMEOUT) == 0


def test_dashboard_refuses_an_in_process_broker():
    result = run_spinach("dashboard", "basic:spin")
    assert result.returncode == 2
    assert "MemoryBroker, which another process cannot see" in result.stderr


def test_dashboard_options_are_checked():
    result = run_spinach("dashboard", "basic:spin", "--basic-auth", "nopassword")
    assert result.returncode == 2 and "expected USER:PASSWORD" in result.stderr
