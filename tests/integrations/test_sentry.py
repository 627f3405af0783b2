"""The Sentry integration against real sentry-sdk, its events caught by a test transport."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

sentry_sdk = pytest.importorskip("sentry_sdk")

from sentry_sdk.integrations.logging import LoggingIntegration  # noqa: E402
from sentry_sdk.transport import Transport  # noqa: E402

from spinach import Engine, MemoryBroker, Tasks, const  # noqa: E402
from spinach.contrib.sentry import SpinachIntegration  # noqa: E402
from spinach.testing import FakeClock  # noqa: E402

tasks = Tasks()
attempts: dict[str, int] = {}


@tasks.task(name="fails", max_retries=1)
def fails() -> None:
    raise ValueError("always broken")


@tasks.task(name="flaky", max_retries=2)
def flaky(key: str) -> None:
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] < 2:
        raise ConnectionError("first attempt fails")


class CollectingTransport(Transport):
    """Keeps every envelope item instead of sending it."""

    def __init__(self, options: Any = None):
        super().__init__(options)
        self.items: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def capture_envelope(self, envelope: Any) -> None:
        with self.lock:
            for item in envelope.items:
                payload = item.payload.json if item.payload.json is not None else {}
                self.items.append((item.type, payload))

    def of_type(self, kind: str) -> list[dict]:
        with self.lock:
            return [payload for item_type, payload in self.items if item_type == kind]


@pytest.fixture
def transport():
    collecting = CollectingTransport()
    sentry_sdk.init(
        dsn="http://public@localhost/1",
        transport=collecting,
        # the logging integration too: the worker's error line must not be a second event
        integrations=[SpinachIntegration(), LoggingIntegration(event_level=logging.ERROR)],
        default_integrations=False,
        traces_sample_rate=1.0,
        enable_backpressure_handling=False,  # its monitor thread sleeps 10 s before ending
    )
    yield collecting
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)  # later tests report nothing, start nothing


def run_jobs(*jobs: tuple, rounds: int = 2) -> None:
    """Run ``jobs`` and their retries: each round runs what is due, then the broker's clock
    jumps past the longest retry delay."""
    clock = FakeClock()
    engine = Engine(MemoryBroker(clock=clock), namespace="sentry")
    engine.attach_tasks(tasks)
    for task, *args in jobs:
        engine.schedule(task, *args)
    for _ in range(rounds):
        engine.start_workers(number=1, stop_when_queue_empty=True, block=True)
        clock.advance(const.RETRY_MAX_DELAY + 1)


@pytest.fixture(autouse=True)
def clear_attempts():
    attempts.clear()


def test_a_failing_job_is_captured_once_with_its_tags(transport):
    run_jobs((fails,))
    sentry_sdk.flush()
    [event] = transport.of_type("event")
    assert event["exception"]["values"][-1]["type"] == "ValueError"
    tags = event["tags"]
    assert tags["spinach.task"] == "fails"
    assert tags["spinach.queue"] == "spinach"
    assert tags["spinach.attempt"] == "2"
    assert tags["spinach.job_id"]
    assert "celery_task_id" not in tags


def test_a_retried_then_successful_job_sends_no_event(transport):
    run_jobs((flaky, "once"))
    sentry_sdk.flush()
    assert attempts == {"once": 2}
    assert transport.of_type("event") == []


def test_each_run_is_a_transaction_when_tracing_is_on(transport):
    run_jobs((flaky, "traced"))
    sentry_sdk.flush()
    # sentry-sdk 2 sends transactions; 3 sends root spans ("segments") in span envelopes
    runs = [
        (t.get("transaction"), t["contexts"]["trace"].get("status"))
        for t in transport.of_type("transaction")
    ]
    runs += [(s["name"], s.get("status")) for spans in transport.of_type("span")
             for s in spans["items"] if s.get("is_segment")]  # fmt: skip
    # the failed attempt and the successful one
    assert [name for name, _ in runs] == ["flaky", "flaky"]
    assert [status != "ok" for _, status in runs] == [True, False]


def test_send_retries_captures_each_failed_attempt(transport):
    sentry_sdk.get_client().get_integration(SpinachIntegration).send_retries = True
    run_jobs((flaky, "retried"))
    sentry_sdk.flush()
    [event] = transport.of_type("event")
    assert event["tags"]["spinach.attempt"] == "1"


def test_without_a_client_nothing_is_reported():
    run_jobs((fails,))  # no error: the hooks see no integration and step aside


def test_a_facade_job_also_carries_celery_integration_tags(transport):
    engine = Engine(MemoryBroker(), namespace="sentry-facade")
    engine.attach_tasks(tasks)
    # a facade job: its id is the Celery task id, its meta has the message's headers
    job = engine.build_job(fails, meta={"headers": {}}, max_retries=0, id="celery-id-1")
    engine.schedule_jobs([job])
    engine.start_workers(number=1, stop_when_queue_empty=True)
    sentry_sdk.flush()
    [event] = transport.of_type("event")
    assert event["tags"]["celery_task_id"] == "celery-id-1"
    assert event["extra"]["celery-job"] == {"task_name": "fails"}
    assert event["tags"]["spinach.attempt"] == "1"
