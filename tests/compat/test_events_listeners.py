"""Task events while nobody listens (``EventDispatcher``'s probe): on a real Redis, with a
real subscriber appearing and going; the probe's clock is the test's."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from spinach_compat.events import records
from spinach_compat.events.dispatcher import PROBE_INTERVAL, EventDispatcher
from tests.compat.test_events_fanout import _Receiver
from tests.helpers import wait_until

NODE = "probe@testhost"
TIMEOUT = 10.0  #: seconds a message gets before the test gives up


class Clock:
    """The probe's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Subscriber:
    """A pattern subscription, as kombu's receivers make (PSUBSCRIBE), reading messages."""

    def __init__(self, client: Any):
        self.pubsub = client.pubsub()
        self.pubsub.psubscribe("*")
        message = self.pubsub.get_message(timeout=TIMEOUT)
        assert message is not None and message["type"] == "psubscribe"

    def next(self) -> tuple[str, list[dict[str, Any]]]:
        """The next message's routing key and events."""
        message = self.pubsub.get_message(timeout=TIMEOUT)
        assert message is not None and message["type"] == "pmessage"
        envelope = json.loads(message["data"])
        events = json.loads(base64.b64decode(envelope["body"]))
        key = envelope["properties"]["delivery_info"]["routing_key"]
        return key, events if isinstance(events, list) else [events]

    def close(self) -> None:
        self.pubsub.close()


@pytest.fixture
def probed(make_app, redis_server) -> Iterator[tuple[EventDispatcher, Clock, Any]]:
    """A worker's dispatcher on a real Redis, flushed by the test, its probe's clock, and a
    client of its database."""
    url, clock = redis_server.url_for(6), Clock()
    dispatcher = EventDispatcher(app=make_app(broker=url), hostname=NODE, buffered=True,
                                 monotonic=clock)  # fmt: skip
    dispatcher._start_thread = lambda: None  # type: ignore[method-assign]
    with redis_server.client(db=6) as client:
        yield dispatcher, clock, client
    dispatcher.close()


def _job(dispatcher: EventDispatcher, number: int) -> None:
    """A job's three task events (received, started, succeeded), recorded."""
    uuid = f"id-{number}"
    dispatcher.record(records.received, uuid, "proj.noop", "()", "{}", uuid, None, 0, None,
                      None)  # fmt: skip
    dispatcher.record(records.succeeded, uuid, "None", 0.001)
    assert dispatcher._flush(None)


def _uuids(events: list[dict[str, Any]]) -> set[str]:
    return {event["uuid"] for event in events}


def test_task_events_nobody_hears_pause_until_a_heartbeat_is_heard(probed) -> None:
    """Task events that reached nobody pause the next ones (only counted); a subscriber
    that comes gets the next heartbeat, which resumes them."""
    dispatcher, _, client = probed
    _job(dispatcher, 1)  # nobody listens: published, heard by none
    subscriber = Subscriber(client)
    try:
        _job(dispatcher, 2)  # paused: counted, not published
        assert dispatcher.unheard == 3
        dispatcher.send("worker-heartbeat", freq=2.0, active=0, processed=2)
        assert dispatcher._flush(None)
        _job(dispatcher, 3)
        key, events = subscriber.next()
        assert key == "worker.heartbeat" and events[0]["type"] == "worker-heartbeat"
        key, events = subscriber.next()
        assert key == "task.multi" and _uuids(events) == {"id-3"}
        assert [event["type"] for event in events] == [
            "task-received", "task-started", "task-succeeded"
        ]  # fmt: skip
    finally:
        subscriber.close()
    assert wait_until(lambda: client.pubsub_numpat() == 0, TIMEOUT)
    _job(dispatcher, 4)  # heard by none again
    _job(dispatcher, 5)
    assert dispatcher.unheard == 6


def test_the_first_flush_after_the_probe_interval_publishes_again(probed) -> None:
    """Paused, the task events are published again once ``PROBE_INTERVAL`` passed: a
    subscriber that came meanwhile gets them (it missed only the paused ones)."""
    dispatcher, clock, client = probed
    _job(dispatcher, 1)
    subscriber = Subscriber(client)
    try:
        clock.now += PROBE_INTERVAL / 2
        _job(dispatcher, 2)
        assert dispatcher.unheard == 3
        clock.now += PROBE_INTERVAL / 2
        _job(dispatcher, 3)  # the probe: heard
        _job(dispatcher, 4)
        assert _uuids(subscriber.next()[1]) == {"id-3"}
        assert _uuids(subscriber.next()[1]) == {"id-4"}
        assert dispatcher.unheard == 3
    finally:
        subscriber.close()


def test_worker_events_are_published_while_task_events_pause(probed) -> None:
    """Worker events always go: one that a subscriber hears is published even during the
    pause, before the task events recorded with it."""
    dispatcher, _, client = probed
    _job(dispatcher, 1)
    subscriber = Subscriber(client)
    try:
        dispatcher.record(records.received, "id-2", "proj.noop", "()", "{}", "id-2", None, 0,
                          None, None)  # fmt: skip
        dispatcher.send("worker-online", freq=2.0, active=0, processed=0)
        dispatcher.record(records.succeeded, "id-2", "None", 0.001)
        assert dispatcher._flush(None)
        key, events = subscriber.next()
        assert key == "worker.online" and len(events) == 1
        assert dispatcher.unheard == 3
    finally:
        subscriber.close()


def test_celerys_receiver_that_starts_gets_task_events_after_the_probe(probed, redis_server):
    """Real Celery's ``EventReceiver`` subscribing during a pause receives the task events
    published from the next probe on."""
    dispatcher, clock, client = probed
    _job(dispatcher, 1)
    before = client.pubsub_numpat()
    with _Receiver(redis_server.url_for(6)) as receiver:
        assert wait_until(lambda: client.pubsub_numpat() > before, TIMEOUT)
        _job(dispatcher, 2)  # paused
        clock.now += PROBE_INTERVAL
        _job(dispatcher, 3)
        assert wait_until(lambda: len(receiver.events) >= 3, TIMEOUT)
    assert [(e["type"], e["uuid"]) for e in receiver.events] == [
        ("task-received", "id-3"), ("task-started", "id-3"), ("task-succeeded", "id-3"),
    ]  # fmt: skip
