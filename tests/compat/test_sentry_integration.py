"""spinach.contrib.sentry on facade jobs: Celery's tag names beside ours, once per failure."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from .conftest import WAIT

sentry_sdk = pytest.importorskip("sentry_sdk")

from sentry_sdk.integrations.logging import LoggingIntegration  # noqa: E402
from sentry_sdk.transport import Transport  # noqa: E402

from spinach.contrib.sentry import SpinachIntegration  # noqa: E402


class EventTransport(Transport):
    """Keeps the error events; ``arrived`` is set at the first."""

    def __init__(self) -> None:
        super().__init__(None)
        self.events: list[dict] = []
        self.arrived = threading.Event()

    def capture_envelope(self, envelope: Any) -> None:
        for item in envelope.items:
            if item.type == "event":
                self.events.append(item.payload.json)
                self.arrived.set()


@pytest.fixture
def transport():
    collecting = EventTransport()
    sentry_sdk.init(
        dsn="http://public@localhost/1",
        transport=collecting,
        # the logging integration too: the facade's failure line must not be a second event
        integrations=[SpinachIntegration(), LoggingIntegration(event_level=logging.ERROR)],
        default_integrations=False,
        enable_backpressure_handling=False,
    )
    yield collecting
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)  # later tests report nothing, start nothing


def test_a_failing_facade_task_is_captured_once_with_celery_s_tags(app, run_worker, transport):
    @app.task(name="proj.tasks.boom")
    def boom(x):
        raise KeyError(x)

    result = boom.delay(7)
    run_worker(concurrency=1)
    assert transport.arrived.wait(WAIT), "no Sentry event for the failed task"
    with pytest.raises(KeyError):
        result.get(timeout=WAIT)
    app.stop_worker()
    sentry_sdk.flush()
    [event] = transport.events
    assert event["tags"]["celery_task_id"] == result.id
    assert event["extra"]["celery-job"] == {"task_name": "proj.tasks.boom"}
    assert event["tags"]["spinach.task"] == "proj.tasks.boom"
    assert event["exception"]["values"][-1]["type"] == "KeyError"
