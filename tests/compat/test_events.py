"""Celery events from facade workers (``-E``), read by real Celery's ``EventReceiver`` and
``State`` on the same Redis, compared with a real Celery worker's, and shown by Flower.

Every wait is for an event, a log line or a Redis reply (deadlines are safety nets only).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import celery
import pytest
from celery.events.receiver import EventReceiver
from celery.events.state import State

from tests.compat.worker_process import ROOT, WorkerProcess, project_worker
from tests.helpers import wait_until

TIMEOUT = 30.0  #: seconds an awaited event gets before the test gives up
TASKS = "tests.compat.proj.tasks"
NODE = "events@testhost"


class Capture:
    """Real Celery's receiver in a thread, feeding a real ``State`` and a list of events."""

    def __init__(self, url: str, redis_server: Any, db: int):
        self.app = celery.Celery(broker=url, set_as_current=False)
        self.state = State()
        self.events: list[dict[str, Any]] = []
        self.receiver: EventReceiver | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="event-capture")
        self._redis, self._db = redis_server, db

    def __enter__(self) -> Capture:
        with self._redis.client(db=self._db) as client:
            before = client.pubsub_numpat()
            self._thread.start()
            assert wait_until(lambda: client.pubsub_numpat() > before, TIMEOUT)  # subscribed
        return self

    def __exit__(self, *exc: object) -> None:
        if self.receiver is not None:
            self.receiver.should_stop = True
        self._thread.join(TIMEOUT)

    def _run(self) -> None:
        with self.app.connection() as connection:
            self.receiver = self.app.events.Receiver(connection, handlers={"*": self._on})
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def _on(self, event: dict[str, Any]) -> None:
        with self._changed:
            self.state.event(event)
            self.events.append(dict(event))
            self._changed.notify_all()

    def wait_for(self, found: Callable[[list[dict[str, Any]]], Any]) -> Any:
        """Wait until ``found(events)`` is true; its value."""
        with self._changed:
            value = self._changed.wait_for(lambda: found(self.events), TIMEOUT)
        assert value, f"not seen within {TIMEOUT}s; events: {[e['type'] for e in self.events]}"
        return value

    def of(self, task_id: str) -> list[str]:
        return [e["type"] for e in self.events if e.get("uuid") == task_id]

    def ended(self, task_id: str, last: str) -> Callable[[list], bool]:
        return lambda events: last in [e["type"] for e in events if e.get("uuid") == task_id]


def _client(impl: str, url: str) -> Any:
    if impl == "celery":
        return celery.Celery(broker=url, backend=url, set_as_current=False)
    import spinach_compat

    return spinach_compat.Celery("proj", broker=url, backend=url, set_as_current=False)


def _scenario(client: Any, capture: Capture) -> dict[str, str]:
    """A succeeded, a failed, a retried and a revoked task; their ids once all ended."""
    revoked = str(uuid.uuid4())
    client.control.revoke(revoked)
    ids = {
        "succeeded": client.send_task(f"{TASKS}.add", (2, 3)).id,
        "failed": client.send_task(f"{TASKS}.fail", ("boom",)).id,
        "retried": client.send_task(f"{TASKS}.flaky", (1,)).id,
        "revoked": client.send_task(f"{TASKS}.add", (1, 1), task_id=revoked).id,
    }
    for name, last in (("succeeded", "task-succeeded"), ("failed", "task-failed"),
                       ("retried", "task-succeeded"), ("revoked", "task-revoked")):  # fmt: skip
        capture.wait_for(capture.ended(ids[name], last))
    capture.wait_for(lambda events: any(e["type"] == "worker-heartbeat" for e in events))
    return ids


def _run(impl: str, redis_server: Any, db: int, log: Path) -> tuple[Capture, dict[str, str]]:
    url = redis_server.url_for(db)
    with redis_server.client(db=db) as client:
        client.flushdb()
    capture = Capture(url, redis_server, db)
    extra = ["--without-gossip", "--without-mingle"] if impl == "celery" else []
    with capture:
        with project_worker(impl, redis_server, db, log, ["-P", "threads", "-c", "2", "-E",
                                                           "-n", NODE, *extra]):  # fmt: skip
            ids = _scenario(_client(impl, url), capture)
        capture.wait_for(lambda events: events[-1]["type"] == "worker-offline")
    return capture, ids


@pytest.fixture(scope="module")
def facade_run(redis_server, tmp_path_factory) -> tuple[Capture, dict[str, str]]:
    return _run("spinach_compat", redis_server, 11, tmp_path_factory.mktemp("ev") / "w.log")


def test_celery_state_follows_a_facade_worker(facade_run):
    capture, ids = facade_run
    tasks = capture.state.tasks

    assert tasks[ids["succeeded"]].state == "SUCCESS"
    assert tasks[ids["succeeded"]].result == "5" and tasks[ids["succeeded"]].runtime >= 0
    assert tasks[ids["succeeded"]].name == f"{TASKS}.add"
    assert tasks[ids["succeeded"]].args == "(2, 3)"
    assert tasks[ids["failed"]].state == "FAILURE"
    assert tasks[ids["failed"]].exception == "ValueError('boom')"
    assert "ValueError: boom" in tasks[ids["failed"]].traceback
    assert capture.of(ids["retried"]) == [
        "task-received", "task-started", "task-retried",
        "task-received", "task-started", "task-succeeded",
    ]  # fmt: skip
    assert tasks[ids["retried"]].state == "SUCCESS" and tasks[ids["retried"]].retries == 1
    assert tasks[ids["revoked"]].state == "REVOKED"
    assert capture.of(ids["revoked"]) == ["task-revoked"]
    assert {task.worker.hostname for task in tasks.values()} == {NODE}


def test_the_worker_is_online_beats_and_goes_offline(facade_run):
    capture, _ = facade_run
    types = [e["type"] for e in capture.events if e["type"].startswith("worker-")]

    assert types[0] == "worker-online" and types[-1] == "worker-offline"
    assert "worker-heartbeat" in types
    beat = next(e for e in capture.events if e["type"] == "worker-heartbeat")
    assert beat["freq"] == 2.0 and beat["sw_ident"] == "spinach-compat"
    offline = capture.events[-1]
    assert offline["processed"] == 4 and offline["active"] == 0  # ran twice, once, none
    worker = capture.state.workers[NODE]
    assert worker.processed == 4 and not worker.alive  # offline now


def test_event_fields_are_celerys(facade_run, redis_server, tmp_path):
    """Each type of event carries the fields a real Celery worker sends for it."""
    ours, _ = facade_run
    theirs, _ = _run("celery", redis_server, 12, tmp_path / "celery.log")

    def fields(capture: Capture) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for event in capture.events:
            found.setdefault(event["type"], set()).update(event)
        return found

    assert fields(ours) == fields(theirs)
