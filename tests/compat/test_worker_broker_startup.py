"""``spinach-compat -A proj worker`` started while its Redis is down: it retries as
Celery's ``broker_connection_*`` settings say (tiny waits from ``broker_transport_options``),
then starts, or exits 1 with one line naming the URL (password masked) and the cause."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import spinach_compat
from spinach_compat.worker.broker_wait import connection_retry
from tests.support.processes import LogReader, StartedProcesses
from tests.support.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
PROCESS_TIMEOUT = 60.0

Start = Callable[..., tuple[subprocess.Popen, LogReader]]


@pytest.fixture
def start_worker() -> Iterator[Start]:
    """Start facade workers of ``tests.compat.startup_proj``; kill what still runs after."""
    processes = StartedProcesses()

    def start(url: str, max_retries: int) -> tuple[subprocess.Popen, LogReader]:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "STARTUP_BROKER_URL": url,
               "STARTUP_MAX_RETRIES": str(max_retries)}  # fmt: skip
        command = [sys.executable, "-m", "spinach_compat", "-A", "tests.compat.startup_proj",
                   "worker", "-l", "info", "--quiet"]  # fmt: skip
        return processes.start(command, cwd=ROOT, env=env)

    yield start
    processes.end_all(PROCESS_TIMEOUT)


def test_the_settings_give_the_retries():
    app = spinach_compat.Celery("settings", broker="memory://", set_as_current=False)
    assert connection_retry(app.conf).limit == 100  # Celery's default
    app.conf.broker_connection_max_retries = 0
    assert connection_retry(app.conf).limit is None  # forever
    app.conf.broker_connection_retry = False  # on_startup unset: Celery falls back to it
    assert connection_retry(app.conf).limit == 1
    app.conf.broker_connection_retry_on_startup = True
    assert connection_retry(app.conf).limit is None


def test_the_worker_gives_up_with_one_line_and_status_1(start_worker: Start):
    port = free_port()
    process, log = start_worker(f"redis://:secret@127.0.0.1:{port}/0", 3)
    assert process.wait(PROCESS_TIMEOUT) == 1, log.text
    log.join()
    text = log.text
    for attempt in (1, 2, 3):
        assert f"(attempt {attempt} of 3)" in text, text
    assert (
        text.rstrip()
        .splitlines()[-1]
        .startswith(
            f"ERROR: cannot reach the broker at redis://:**@127.0.0.1:{port}/0 after 3 attempt(s): "
            "ConnectionError: "
        )
    ), text
    assert "Traceback" not in text and "secret" not in text


def test_the_worker_starts_once_its_redis_comes_up(start_worker: Start):
    server = RedisServer()
    server.port = free_port()  # where nothing listens until restart() below
    try:
        process, log = start_worker(server.url, 0)
        log.wait_for(r"\(attempt 1 of unlimited\)")
        server.restart()
        log.wait_for(r"ready\.")
        client = spinach_compat.Celery("startup", broker=server.url, set_as_current=False)
        client.send_task("startup.note", args=["after the outage"])
        log.wait_for(r"noted after the outage")
        process.terminate()
        assert process.wait(PROCESS_TIMEOUT) == 0, log.text
        assert "Traceback" not in log.text
    finally:
        server.close()
