"""``EventDispatcher``: publishes Celery events through kombu on the app's broker.

Events are best effort, as Celery's: they must never break or slow the job that causes
them. A worker's dispatcher is *buffered*: ``send`` (or ``record``, the raw values of a
task's events) appends to an in-memory buffer with the time, and one publisher thread makes,
stamps and publishes the buffer every ``FLUSH_INTERVAL`` (the task events in one message: a
list, as Celery's grouped events, its JSON written directly; on Redis, the message kombu
would publish is written and published without kombu: see ``fanout``); a publishing error
(the broker is away) is logged once per outage, and the events of the outage are dropped
(counted in the line saying it is over). The buffer holds at most ``BUFFER_LIMIT``
records: past that the oldest are dropped. An unbuffered dispatcher (``task-sent`` from
``delay()``) publishes in the caller's thread, with the same outage handling.

Nobody listening (Flower down): on Redis, pub/sub drops a message no client subscribed to,
and ``PUBLISH`` says how many received it. When a buffered dispatcher's task events reached
none, for ``PROBE_INTERVAL`` seconds its task events are only counted (``unheard``), not
made nor published; the next flush after it publishes them again, as the next probe. Worker
events (online, heartbeats, offline) are always published, and one that reaches a receiver
ends the pause. A receiver that subscribes misses at most ``PROBE_INTERVAL`` seconds of task
events, as with Celery, whose events published before a subscription are lost too.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kombu import Connection, Producer
from kombu.clocks import LamportClock
from kombu.exceptions import EncodeError
from kombu.serialization import dumps
from kombu.utils.url import maybe_sanitize_url

from . import records
from .event import EXCHANGE_NAME, get_exchange, group_from, routing_key
from .event import utcoffset as local_utcoffset
from .fanout import RedisFanout

if TYPE_CHECKING:
    from ..app.base import Celery

logger = logging.getLogger("spinach_compat.events")

#: A buffered entry: when it was recorded, and what makes its events of which values.
_Entry = tuple[float, Callable[..., list[dict[str, Any]]], tuple[Any, ...]]

#: Records (an event, or a task's start: received and started) kept while the publisher
#: thread catches up: more absorbs longer bursts, at the cost of memory (a record is a few
#: hundred bytes); past it the oldest are dropped.
BUFFER_LIMIT = 10_000
_JSON = {"content_type": "application/json", "content_encoding": "utf-8"}
_ENCODER = json.JSONEncoder(check_circular=False, separators=(",", ":"))
#: Seconds between two publications of the buffered events: longer puts more events in
#: each message (cheaper for the worker), at the cost of their delay.
FLUSH_INTERVAL = 0.25
#: Records published at most as one message (a list) when they wait together: more means
#: fewer messages under load, at the cost of bigger ones.
BATCH_LIMIT = 1000
#: Seconds between attempts to reach the broker again during an outage: shorter notices the
#: end of an outage sooner, at the cost of more connection attempts.
RETRY_INTERVAL = 1.0
#: Seconds ``close`` waits for buffered events (``worker-offline``) to be published.
CLOSE_TIMEOUT = 5.0
#: Seconds a buffered dispatcher's task events are only counted after some reached no
#: receiver (see the module doc): longer saves more of a worker's CPU while nobody listens,
#: at the cost of the task events a receiver that subscribes misses.
PROBE_INTERVAL = 1.0


class _Encoded:
    """A message body encoded in JSON already: its ``text`` (held, not copied: a worker's
    bodies are hundreds of kilobytes, and each copy of them costs about as much as their
    base64)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def anon_nodename() -> str:
    """``gen<pid>@<host>``: the name of a process that is not a worker (as Celery's)."""
    return f"gen{os.getpid()}@{socket.gethostname()}"


class EventDispatcher:
    """Sends events of ``hostname`` to the app's ``event_exchange`` (see the module doc).

    Celery's signature: ``connection`` (or ``channel``) is used when given, else the app's
    broker (``app``: the current app by default); ``groups`` limits the groups sent
    (``{"worker"}``). ``buffered`` (the workers') publishes from a thread of its own.
    ``set_task_events`` turns the ``task`` group on and off at run time (what the
    ``enable_events`` and ``disable_events`` remote control commands do).
    """

    def __init__(
        self, connection: Connection | None = None, hostname: str | None = None,
        enabled: bool = True, channel: Any = None, buffer_while_offline: bool = True,
        app: Celery | None = None, serializer: str | None = None,
        groups: set[str] | None = None, *, buffered: bool = False,
        monotonic: Callable[[], float] = time.monotonic, **_: Any,
    ):  # fmt: skip
        from .._state import get_current_app

        self.app = app if app is not None else get_current_app()
        conf = self.app.conf
        self.hostname = hostname or anon_nodename()
        self.enabled = enabled
        self.groups = set(groups or ())
        self.serializer = serializer or conf.get("event_serializer") or "json"
        self.exchange_name = conf.get("event_exchange") or EXCHANGE_NAME
        self.pid = os.getpid()
        self.clock = LamportClock()
        self.buffered = buffered
        self.dropped = 0  #: events dropped since the outage began
        self.unheard = 0  #: task events not published as nobody listened (see the module doc)
        self._monotonic = monotonic  # the probe's clock (tests inject theirs)
        self._unheard_until = -math.inf  # task events are only counted until then
        self._given = connection or (channel.connection.client if channel is not None else None)
        self._task_events = True
        self._buffer: collections.deque[_Entry] = collections.deque(maxlen=BUFFER_LIMIT)
        self._offset, self._offset_until = 0.0, 0.0  # utcoffset(), until when it holds
        self._json_writer: tuple[float, records.JsonWriter | None] = (0.0, None)  # and its offset
        self._closing = threading.Event()
        self._lock = threading.Lock()  # the connection, in the publishing thread
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._fanout: RedisFanout | None = None  # JSON messages on Redis, without kombu
        self._outage = False

    def __enter__(self) -> EventDispatcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the sender's side ---------------------------------------------------------------

    def send(
        self, type: str, blind: bool = False, utcoffset: Any = None, retry: bool = False,
        retry_policy: Any = None, Event: Any = None, **fields: Any,
    ) -> None:  # fmt: skip
        """Send an event of ``type`` with ``fields`` (best effort: see the module doc).
        Celery's other arguments are accepted: every event has a clock and is not retried."""
        if not self.enabled or self._closing.is_set():
            return
        group = type.partition("-")[0]
        if (group == "task" and not self._task_events) or (
            self.groups and group not in self.groups
        ):
            return
        fields["type"] = type
        self.put(fields)

    def put(self, event: dict[str, Any]) -> None:
        """Stamp and send ``event`` (with its ``type``)."""
        self.record(records.given, event)

    def record(self, make: Callable[..., list[dict[str, Any]]], *values: Any) -> None:
        """Send the events ``make(*values)`` returns, stamped with the time of this call.
        Buffered, they are made, stamped and encoded in the publisher thread (the worker's
        fast path: ``records``; the caller checked ``task_events``)."""
        entry = (time.time(), make, values)
        if not self.buffered:
            with self._lock:
                for event in self._stamped(entry):
                    self._publish(event, routing_key(event["type"]))
            return
        self._buffer.append(entry)
        if self._thread is None:
            self._start_thread()

    def _stamped(self, entry: _Entry) -> list[dict[str, Any]]:
        """The events of a buffer entry, with their hostname, offset, pid, clock and time."""
        now, make, values = entry
        if now >= self._offset_until:  # the offset changes twice a year: asked every minute
            self._offset, self._offset_until = local_utcoffset(), now + 60
        events = make(*values)
        for event in events:
            event["hostname"], event["utcoffset"] = self.hostname, self._offset
            event["pid"], event["clock"], event["timestamp"] = self.pid, self.clock.forward(), now
        return events

    def set_task_events(self, enabled: bool) -> None:
        """Send task events (``enable_events``), or stop sending them (``disable_events``);
        worker events (heartbeats) go on either way, as in Celery."""
        self._task_events = enabled

    @property
    def task_events(self) -> bool:
        """Whether task events are sent."""
        return self.enabled and self._task_events and (not self.groups or "task" in self.groups)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Publish what is buffered (within ``timeout`` seconds), then close; idempotent."""
        self._closing.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            self._disconnect()

    # -- the publisher's side ------------------------------------------------------------

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="spinach-events", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        """Publish the buffered events every ``FLUSH_INTERVAL`` until closed, then the
        rest. Records arriving during a flush wait for the next one: a message has a fixed
        cost (a round trip, the lock taken back from busy job threads), so fewer, bigger
        messages cost the worker less."""
        closing = False
        while not closing:
            closing = self._closing.wait(FLUSH_INTERVAL)
            if not self._flush(None if closing else len(self._buffer)):
                self.dropped += len(self._buffer)
                self._buffer.clear()
                closing = closing or self._closing.wait(RETRY_INTERVAL)

    def _flush(self, count: int | None) -> bool:
        """Publish the first ``count`` buffered records (every one: None), ``BATCH_LIMIT`` at
        a time; False if publishing failed."""
        left = len(self._buffer) if count is None else count
        while left > 0 and self._buffer:
            size = min(BATCH_LIMIT, len(self._buffer), left)
            pop = self._buffer.popleft
            entries = [pop() for _ in range(size)]
            left = left - size if count is not None else len(self._buffer)
            with self._lock:
                if not self._publish_entries(entries):
                    return False
        return True

    def _publish_entries(self, entries: list[_Entry]) -> bool:
        """Publish buffered ``entries`` in order: each run of task records JSON knows as
        one message made directly (``records.JSON_WRITERS``), the others as events; False
        if publishing failed (the rest is dropped)."""
        if self._monotonic() < self._unheard_until:
            entries = self._heard_entries(entries)
        start = 0
        while start < len(entries):
            body, end = self._json_run(entries, start)
            if body is None:
                end = max(end, self._run_end(entries, start, fast=False))
                batch = [event for entry in entries[start:end] for event in self._stamped(entry)]
                published = self._publish_batch(batch)
            else:
                published = self._publish(body, "task.multi")
            if not published:
                self.dropped += len(entries) - end
                return False
            start = end
        return True

    def _heard_entries(self, entries: list[_Entry]) -> list[_Entry]:
        """The entries to publish while nobody listens: the worker events; the task events
        are counted in ``unheard``."""
        kept = [entry for entry in entries if not _is_task(entry)]
        self.unheard += sum(_event_count(entry) for entry in entries) - len(kept)
        return kept

    def _run_end(self, entries: list[_Entry], start: int, fast: bool) -> int:
        """Where the run from ``start`` of entries JSON knows (``fast``), or not, ends."""
        end, json_known = start, self.serializer == "json"
        while (
            end < len(entries) and (json_known and entries[end][1] in records.JSON_WRITERS) is fast
        ):
            end += 1
        return end

    def _json_run(self, entries: list[_Entry], start: int) -> tuple[_Encoded | None, int]:
        """The ``task.multi`` message, made directly in JSON, of the run of task records from
        ``start``, and where the run ends; no message if there is no such run, or if a value
        is not one JSON takes as is (the run then goes the usual way)."""
        if self.serializer != "json":
            return None, start
        writer, writers, clock = self._writer(entries[start][0]), records.JSON_WRITERS, self.clock
        parts: list[str] = []
        append = parts.append
        try:
            with clock.mutex:  # the clocks of the run's events follow each other
                value = clock.value
                for when, make, values in itertools.islice(entries, start, None):
                    known = writers.get(make)
                    if known is None:
                        break
                    append(known[0](writer, value + 1, when, values))
                    value += known[1]
                clock.value = value
        except TypeError:
            return None, self._run_end(entries, start, fast=True)
        end = start + len(parts)
        if not parts:
            return None, end
        parts[0] = f"[{parts[0]}"  # brackets on the ends: one join, no copy after it
        parts[-1] = f"{parts[-1]}]"
        return _Encoded(",".join(parts)), end

    def _writer(self, now: float) -> records.JsonWriter:
        """The JSON writer of the current stamp (the offset is asked every minute)."""
        if now >= self._offset_until:
            self._offset, self._offset_until = local_utcoffset(), now + 60
        offset, writer = self._json_writer
        if writer is None or offset != self._offset:
            writer = records.JsonWriter(self.hostname, self._offset, self.pid)
            self._json_writer = (self._offset, writer)
        return writer

    def _publish_batch(self, batch: list[dict[str, Any]]) -> bool:
        """Publish ``batch`` in order: each run of task events as one message (a list,
        routing key ``task.multi``, as Celery's grouped events), the other events one by
        one; False if publishing failed (the rest of the batch is dropped)."""
        start = 0
        for end, event in enumerate([*batch, None]):
            if event is not None and group_from(event["type"]) == "task":
                continue
            if not (self._publish_run(batch[start:end]) and self._publish_single(event)):
                self.dropped += len(batch) - start - 1
                return False
            start = end + 1
        return True

    def _publish_run(self, run: list[dict[str, Any]]) -> bool:
        if len(run) > 1:
            return self._publish(run, "task.multi")
        return self._publish_single(run[0] if run else None)

    def _publish_single(self, event: dict[str, Any] | None) -> bool:
        return event is None or self._publish(event, routing_key(event["type"]))

    def _publish(self, body: Any, key: str) -> bool:
        """Publish one message (under ``_lock``); False, logged once per outage, if it
        failed. An event that cannot be encoded raises ``EncodeError`` in the caller's
        thread (unbuffered), else is logged and dropped."""
        try:
            data, encoding = self._encoded(body)
        except EncodeError as exc:
            if not self.buffered:
                raise
            logger.error("%s: dropped", exc)
            return True
        try:
            producer = self._producer or self._connect()
            if self._fanout is not None and encoding is _JSON:
                self._heard(key, self._fanout.publish(data, key))
            else:
                producer.publish(
                    data, routing_key=key, exchange=self.exchange_name, retry=False,
                    headers={"hostname": self.hostname}, delivery_mode=1, **encoding,
                )  # fmt: skip
        except Exception as exc:
            self._disconnect()
            self._on_outage(exc)
            return False
        if self._outage:
            self._outage = False
            logger.warning("Events are published again (%d dropped meanwhile)", self.dropped)
            self.dropped = 0
        return True

    def _encoded(self, body: Any) -> tuple[Any, dict[str, str]]:
        """``publish``'s body and its encoding arguments: JSON encoded here (the C encoder,
        for the usual values), else by kombu's ``event_serializer``; ``EncodeError`` naming
        the event, its task and the cause if neither can."""
        if isinstance(body, _Encoded):
            return body.text, _JSON
        if self.serializer == "json":
            try:
                return _ENCODER.encode(body), _JSON
            except (TypeError, ValueError):  # a value only kombu's encoder knows
                pass
        try:
            content_type, content_encoding, data = dumps(body, serializer=self.serializer)
        except Exception as exc:
            first = body[0] if isinstance(body, list) and body else body
            raise EncodeError(
                f"event {first.get('type')!r} of task {first.get('uuid')} from "
                f"{self.hostname} cannot be encoded with event_serializer "
                f"{self.serializer!r}: {type(exc).__name__}: {exc}"
            ) from exc
        return data, {"content_type": content_type, "content_encoding": content_encoding}

    def _heard(self, key: str, receivers: int) -> None:
        """After a message reached ``receivers`` clients: pause the task events if a task
        event reached none, resume them if any event reached some (see the module doc)."""
        if receivers:
            self._unheard_until = -math.inf
        elif self.buffered and key.startswith("task."):
            self._unheard_until = self._monotonic() + PROBE_INTERVAL

    def flush(self, *_: Any, **__: Any) -> None:
        """Nothing to do: events are published as they come (Celery's API)."""

    def _connect(self) -> Producer:
        connection = self._given or self.app.connection_for_write()
        exchange = get_exchange(connection, self.exchange_name)
        producer = Producer(connection, exchange=exchange, serializer=self.serializer)
        self._connection, self._producer = connection, producer
        headers = {"hostname": self.hostname}
        self._fanout = RedisFanout.for_connection(connection, self.exchange_name, headers)
        return producer

    def _disconnect(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        self._fanout = None
        if connection is not None and connection is not self._given:  # the caller's: kept
            with contextlib.suppress(Exception):  # closing a connection already gone
                connection.close()

    def _on_outage(self, exc: Exception) -> None:
        self.dropped += 1
        if self._outage:
            return
        self._outage = True
        url = maybe_sanitize_url(self.app.conf.broker_url)
        logger.warning(
            "Events cannot be published to %s (%s: %s): dropping them until it is "
            "reachable again (jobs are not affected)", url, type(exc).__name__, exc,
        )  # fmt: skip


def _is_task(entry: _Entry) -> bool:
    """Whether a buffered entry holds task events (a worker event does not)."""
    make, values = entry[1], entry[2]
    if make is records.given:
        return bool(group_from(values[0]["type"]) == "task")
    return True


def _event_count(entry: _Entry) -> int:
    """How many events a buffered entry makes."""
    known = records.JSON_WRITERS.get(entry[1])
    return 1 if known is None else known[1]
