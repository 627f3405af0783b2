"""A worker starting while its broker is down: it retries as Celery's
``broker_connection_*`` settings say, then starts, or gives up with one line and status 1.

``wait_for_broker`` is tested with an injected sleep (no waiting); the ``spinach worker``
processes get tiny intervals from ``--broker-retry-interval``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from spinach import Engine, RedisBroker
from spinach.worker_process.startup import (
    BrokerUnreachable,
    ConnectionRetry,
    broker_address,
    mask_password,
    wait_for_broker,
)
from tests.support.processes import LogReader, StartedProcesses
from tests.support.redis_server import RedisServer, free_port
from tests.test_cli import APPS, PROCESS_TIMEOUT, StartWorker, _env


@pytest.fixture
def start_worker() -> Iterator[StartWorker]:
    """Start ``python -m spinach worker ...`` processes; kill whatever still runs after."""
    processes = StartedProcesses()

    def start(*args: str, **env: str) -> tuple[subprocess.Popen, LogReader]:
        command = [sys.executable, "-m", "spinach", "worker", *args]
        return processes.start(command, cwd=APPS, env=_env(**env))

    yield start
    processes.end_all(PROCESS_TIMEOUT)


class Refusing:
    """A connect function failing ``failures`` times, then succeeding."""

    def __init__(self, failures: int):
        self.failures = failures
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"refused #{self.calls}")


# -- wait_for_broker ---------------------------------------------------------------------


def test_the_waits_grow_as_kombus_up_to_the_cap():
    retry = ConnectionRetry(interval_start=2, interval_step=2, interval_max=7)
    waits = retry.intervals()
    assert [next(waits) for _ in range(5)] == [2, 4, 6, 7, 7]


def test_it_retries_until_the_broker_answers(caplog):
    connect, slept = Refusing(2), []
    with caplog.at_level(logging.INFO, logger="spinach.worker_process"):
        wait_for_broker(connect, "redis://u:pw@h:1/0", ConnectionRetry(max_attempts=5),
                        sleep=slept.append)  # fmt: skip
    assert connect.calls == 3
    assert slept == [2.0, 4.0]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == (
        "Cannot reach the broker at redis://u:**@h:1/0 (attempt 1 of 5): "
        "ConnectionError: refused #1; retrying in 2.00 s"
    )
    assert "attempt 2 of 5" in lines[1]
    assert lines[2] == "Reached the broker at redis://u:**@h:1/0 at attempt 3"
    assert "pw" not in caplog.text


def test_it_gives_up_after_the_last_attempt_naming_the_url_and_the_cause(caplog):
    connect, slept = Refusing(10), []
    with pytest.raises(BrokerUnreachable) as raised:
        wait_for_broker(connect, "redis://:pw@h:1/0", ConnectionRetry(max_attempts=3),
                        sleep=slept.append)  # fmt: skip
    assert connect.calls == 3 and len(slept) == 2
    assert str(raised.value) == (
        "cannot reach the broker at redis://:**@h:1/0 after 3 attempt(s): "
        "ConnectionError: refused #3"
    )
    assert caplog.records[-1].getMessage().endswith("(attempt 3 of 3): ConnectionError: "
                                                    "refused #3; giving up")  # fmt: skip


def test_no_retry_on_startup_fails_at_the_first_attempt():
    connect = Refusing(1)
    with pytest.raises(BrokerUnreachable, match="after 1 attempt"):
        wait_for_broker(connect, "redis://h", ConnectionRetry(enabled=False), sleep=[].append)
    assert connect.calls == 1


@pytest.mark.parametrize("max_attempts", [0, None])
def test_zero_or_none_retries_forever(max_attempts, caplog):
    connect = Refusing(250)
    wait_for_broker(connect, "redis://h", ConnectionRetry(max_attempts=max_attempts),
                    sleep=lambda _: None)  # fmt: skip
    assert connect.calls == 251
    assert "(attempt 250 of unlimited)" in caplog.text


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:secret@host:6379/1", "redis://:**@host:6379/1"),
        ("rediss://user:secret@host/0", "rediss://user:**@host/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("unix:///tmp/r.sock?db=0&password=secret", "unix:///tmp/r.sock?db=0&password=**"),
    ],
)
def test_passwords_are_masked(url, masked):
    assert mask_password(url) == masked


def test_the_address_of_a_redis_broker_masks_its_password():
    broker = RedisBroker("redis://:secret@127.0.0.1:1234/3")
    try:
        assert broker_address(broker) == "redis://:**@127.0.0.1:1234/3"
    finally:
        broker.stop()


# -- spinach worker ----------------------------------------------------------------------


def test_a_worker_gives_up_after_its_attempts_with_one_line(start_worker: StartWorker):
    port = free_port()
    url = f"redis://:secret@127.0.0.1:{port}/0"
    process, log = start_worker(
        "redis_app:spin", "--broker-retries", "3", "--broker-retry-interval", "0.01",
        CLI_REDIS_URL=url,
    )  # fmt: skip
    assert process.wait(PROCESS_TIMEOUT) == 1, log.text
    log.join()
    text = log.text
    for attempt in (1, 2, 3):
        assert f"(attempt {attempt} of 3)" in text, text
    last = text.rstrip().splitlines()[-1]
    assert last.startswith(
        f"spinach: cannot reach the broker at redis://:**@127.0.0.1:{port}/0 after 3 attempt(s): "
        "ConnectionError: "
    ), text
    assert "Traceback" not in text and "secret" not in text


def test_a_worker_starts_once_its_redis_comes_up(start_worker: StartWorker):
    server = RedisServer()
    server.port = free_port()  # where nothing listens until restart() below
    process, log = start_worker(
        "redis_app:spin", "--broker-retries", "0", "--broker-retry-interval", "0.01",
        CLI_REDIS_URL=server.url,
    )  # fmt: skip
    try:
        log.wait_for(r"\(attempt 1 of unlimited\)")
        server.restart()  # on the port the worker tries
        client = Engine(RedisBroker(server.url), namespace="startup")
        client.task(lambda text: None, name="note")
        client.schedule("note", "after the outage")
        client.broker.stop()
        log.wait_for(r"noted after the outage")
        process.terminate()
        assert process.wait(PROCESS_TIMEOUT) == 0, log.text
        assert "Reached the broker at" in log.text
    finally:
        server.close()


def test_a_stop_signal_while_waiting_ends_the_wait():
    connect = Refusing(10)
    assert not wait_for_broker(connect, "redis://h", ConnectionRetry(), sleep=lambda _: True)
    assert connect.calls == 1


def test_sigterm_while_waiting_exits_without_starting(start_worker: StartWorker):
    url = f"redis://127.0.0.1:{free_port()}/0"
    process, log = start_worker(
        "redis_app:spin", "--broker-retries", "0", "--broker-retry-interval", "0.01",
        CLI_REDIS_URL=url,
    )  # fmt: skip
    log.wait_for(r"\(attempt 1 of unlimited\)")
    process.terminate()
    assert process.wait(PROCESS_TIMEOUT) == 0, log.text
    log.join()
    assert "Received SIGTERM while waiting for the broker: not starting" in log.text
    assert "Traceback" not in log.text


def test_supervised_children_get_the_broker_retry_options():
    from spinach import cli
    from spinach.supervisor import worker_arguments

    parser = cli.build_parser()
    args = parser.parse_args(["worker", "app", "-p", "2", "--broker-retries", "0",
                              "--broker-retry-interval", "0.3", "--no-broker-retry"])  # fmt: skip
    child = parser.parse_args(["worker", *worker_arguments(args)])
    assert (child.broker_retries, child.broker_retry_interval, child.no_broker_retry) == (
        0, 0.3, True,
    )  # fmt: skip
