"""Events published on Redis without kombu (``spinach_compat.events.fanout``): the message
is the one kombu's Redis transport publishes, and real Celery's receiver reads it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import celery
import pytest
from kombu import Connection

from spinach_compat.events import records
from spinach_compat.events.dispatcher import EventDispatcher, _Encoded
from spinach_compat.events.fanout import RedisFanout
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]

NODE = "fanout@testhost"
TIMEOUT = 10.0  #: seconds a message or an event gets before the test gives up


def _messages(client: Any, count: int) -> list[tuple[str, dict[str, Any]]]:
    """The next ``count`` messages of a pattern subscription: (channel, envelope)."""
    found: list[tuple[str, dict[str, Any]]] = []
    while len(found) < count:
        message = client.get_message(timeout=TIMEOUT)
        assert message is not None, f"only {len(found)} of {count} messages"
        if message["type"] == "pmessage":
            found.append((message["channel"].decode(), json.loads(message["data"])))
    return found


@pytest.mark.parametrize(
    "options",
    [{}, {"global_keyprefix": "pfx:"}, {"fanout_prefix": "pre.", "fanout_patterns": False}],
)
def test_the_direct_message_is_the_one_kombu_publishes(make_app, redis_server, options):
    """Same channel, same envelope (but its fresh delivery tag) as kombu's own publishing,
    under the transport options that change the channel's name."""
    app = make_app(broker=redis_server.url_for(3), broker_transport_options=options)
    dispatcher = EventDispatcher(app=app, hostname=NODE)
    body = _Encoded('[{"type":"task-started","uuid":"id-\\u00e9"}]')
    with redis_server.client(db=3) as client, client.pubsub() as pubsub:
        pubsub.psubscribe("*")
        assert dispatcher._publish(body, "task.multi")  # direct: the dispatcher connected
        assert dispatcher._fanout is not None
        dispatcher._fanout = None  # kombu's publishing on the same connection
        assert dispatcher._publish(body, "task.multi")
        (ours_channel, ours), (kombus_channel, kombus) = _messages(pubsub, 2)
    dispatcher.close()
    assert ours_channel == kombus_channel
    assert ours["properties"].pop("delivery_tag") != kombus["properties"].pop("delivery_tag")
    assert ours == kombus


def test_other_transports_keep_kombus_publishing():
    """Only kombu's Redis transport is published to directly."""
    with Connection("memory://") as connection:
        assert RedisFanout.for_connection(connection, "celeryev", {"hostname": NODE}) is None


def test_another_transport_does_not_import_kombus_redis_transport():
    """Telling a memory:// worker apart costs no import of kombu's Redis transport (and
    redis.asyncio behind it): about a second, which delayed such a worker's exit."""
    code = (
        "import sys\n"
        "from kombu import Connection\n"
        "from spinach_compat.events.fanout import RedisFanout\n"
        "with Connection('memory://') as connection:\n"
        "    assert RedisFanout.for_connection(connection, 'celeryev', {}) is None\n"
        "assert 'kombu.transport.redis' not in sys.modules, 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=TIMEOUT)


class _Receiver:
    """Real Celery's ``EventReceiver`` on ``url``, in a thread, collecting events."""

    def __init__(self, url: str):
        self.app = celery.Celery(broker=url, set_as_current=False)
        self.events: list[dict[str, Any]] = []
        self.entries: list[Any] = []  # what was published
        self.receiver: Any = None
        self._thread = threading.Thread(target=self._run, name="fanout-receiver")

    def _run(self) -> None:
        with self.app.connection() as connection:
            self.receiver = self.app.events.Receiver(connection, handlers={"*": self._on})
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def _on(self, event: dict[str, Any]) -> None:
        self.events.append(dict(event))

    def __enter__(self) -> _Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert wait_until(lambda: self.receiver is not None, TIMEOUT)
        self.receiver.should_stop = True
        self._thread.join(TIMEOUT)


def test_celerys_receiver_reads_the_direct_messages_as_the_usual_events(make_app, redis_server):
    """A worker's buffered task records and a worker event, published directly, reach real
    Celery's receiver as the events the usual path makes, in order."""
    url = redis_server.url_for(4)
    dispatcher = EventDispatcher(app=make_app(broker=url), hostname=NODE, buffered=True)
    with redis_server.client(db=4) as client:
        before = client.pubsub_numpat()
        with _Receiver(url) as receiver:
            assert wait_until(lambda: client.pubsub_numpat() > before, TIMEOUT)  # subscribed
            _publish_and_wait(dispatcher, receiver)
    entries = receiver.entries
    dispatcher.close()
    usual = [event for entry in entries for event in dispatcher._stamped(entry)]
    for event in [*receiver.events, *usual]:
        event.pop("clock")
        event.pop("local_received", None)  # the receiver's own stamp
    assert receiver.events == usual


def _publish_and_wait(dispatcher: EventDispatcher, receiver: _Receiver) -> None:
    """Two task records and a worker event published together, directly."""
    dispatcher._start_thread = lambda: None  # type: ignore[method-assign]
    dispatcher.record(records.received, "id-1", "proj.add", "(1, 2)", "{}", "id-1", None, 0,
                      None, None)  # fmt: skip
    dispatcher.record(records.succeeded, "id-1", "3", 0.5)
    dispatcher.send("worker-heartbeat", active=0, processed=1)
    receiver.entries = list(dispatcher._buffer)
    dispatcher._buffer.clear()
    assert dispatcher._publish_entries(receiver.entries)
    assert dispatcher._fanout is not None
    assert wait_until(lambda: len(receiver.events) == 4, TIMEOUT)


def test_task_templates_give_each_task_its_own_members(make_app, monkeypatch):
    """Records of tasks differing by name, retries, eta or expires, past the templates kept,
    decode to the events the usual path makes."""
    from kombu.serialization import loads

    monkeypatch.setattr(records, "TEMPLATES_LIMIT", 2)
    dispatcher = EventDispatcher(app=make_app(), hostname=NODE, buffered=True)
    dispatcher._start_thread = lambda: None  # type: ignore[method-assign]
    for number, (name, retries, eta, expires) in enumerate([
        ("proj.a", 0, None, None), ("proj.b", 1, None, None),
        ("proj.a", 0, "2026-12-07T10:00:00+00:00", None), ("proj.a", 0, None, "soon"),
        ("proj.a", 0, None, None),
    ]):  # fmt: skip
        dispatcher.record(records.received, f"id-{number}", name, "()", "{}", "r", "p",
                          retries, eta, expires)  # fmt: skip
    entries = list(dispatcher._buffer)
    body, end = dispatcher._json_run(entries, 0)
    assert body is not None and end == len(entries)
    events = loads(body.text, "application/json", "utf-8")
    usual = [event for entry in entries for event in dispatcher._stamped(entry)]
    assert [e["clock"] for e in events] == list(range(1, 11))
    for event in [*events, *usual]:
        del event["clock"]
    assert events == usual


_AWKWARD = [  # (uuid, name, argsrepr, kwargsrepr, root_id, retries, eta, result, runtime)
    ("id-\u00e9\"\u2713", "proj.t\u00e2che", "('\u65e5\u672c', '\\\\')", "{'q': \"it's\"}",
     None, 0, None, "'x\\ty\"z'", 1e-07),
    ("id-2", "proj.big", "(123456789012345678901234567890,)", "{}", "root-\U0001f600",
     2**70, "2026-12-07T10:00:00+00:00", "{'a': [1, (2, 3)], 'b': {'c': None}}", 12345.5),
    ("id-3", "proj.nested", "([{'k': ['\\n', '\\x00']}],)", "{'d': {'e': {}}}", "r",
     -(2**63), "soon", "[[[[]]]] \\\\ \"\" ''", 0.0),
]  # fmt: skip


@pytest.mark.parametrize("values", _AWKWARD, ids=["unicode", "large-ints", "nested"])
def test_the_templated_message_is_the_json_dumps_one(make_app, redis_server, values):
    """A run's message written from the templates, and the same records' events encoded by
    ``json.dumps`` and published by kombu, decode to the same headers and events (but their
    clocks) for awkward values: unicode, large ints, nested reprs, quotes, backslashes."""
    uuid, name, args, kwargs, root_id, retries, eta, result, runtime = values
    app = make_app(broker=redis_server.url_for(4))
    dispatcher = EventDispatcher(app=app, hostname="n\u00f6de@h\u00f4st", buffered=True)
    dispatcher._start_thread = lambda: None  # type: ignore[method-assign]
    dispatcher.record(records.received, uuid, name, args, kwargs, root_id, "p\"\\", retries,
                      eta, None)  # fmt: skip
    dispatcher.record(records.succeeded, uuid, result, runtime)
    entries = list(dispatcher._buffer)
    templated, end = dispatcher._json_run(entries, 0)
    assert templated is not None and end == len(entries)
    usual = [event for entry in entries for event in dispatcher._stamped(entry)]
    with redis_server.client(db=4) as client, client.pubsub() as pubsub:
        pubsub.psubscribe("*")
        assert dispatcher._publish(templated, "task.multi")  # direct, on Redis
        assert dispatcher._fanout is not None
        dispatcher._fanout = None  # kombu's publishing of json.dumps's text
        assert dispatcher._publish(_Encoded(json.dumps(usual)), "task.multi")
        (_, ours), (_, kombus) = _messages(pubsub, 2)
    dispatcher.close()
    decoded = [_decoded(envelope) for envelope in (ours, kombus)]
    for _, events in decoded:
        for event in events:
            del event["clock"]
    assert decoded[0] == decoded[1]
    assert decoded[0][1][0]["retries"] == retries and decoded[0][1][2]["result"] == result


def _decoded(envelope: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A kombu Redis envelope's headers (with its content type and encoding) and body."""
    import base64

    assert envelope["properties"]["body_encoding"] == "base64"
    head = {**envelope["headers"], "type": envelope["content-type"],
            "encoding": envelope["content-encoding"]}  # fmt: skip
    return head, json.loads(base64.b64decode(envelope["body"]).decode(envelope["content-encoding"]))
