"""``EventDispatcher``: publishes Celery events through kombu on the app's broker.

Events are best effort, as Celery's: they must never break or slow the job that causes
them. A worker's dispatcher is *buffered*: ``send`` stamps the event and appends it to an
in-memory buffer, and one publisher thread publishes it; a publishing error (the broker is
away) is logged once per outage, and the events of the outage are dropped (counted in the
line saying it is over). The buffer holds at most ``BUFFER_LIMIT`` events: past that the
oldest are dropped. An unbuffered dispatcher (``task-sent`` from ``delay()``) publishes in
the caller's thread, with the same outage handling.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import socket
import threading
from typing import TYPE_CHECKING, Any

from kombu import Connection, Producer
from kombu.clocks import LamportClock
from kombu.utils.url import maybe_sanitize_url

from .event import EXCHANGE_NAME, get_exchange, group_from, routing_key
from .event import Event as make_event
from .event import utcoffset as local_utcoffset

if TYPE_CHECKING:
    from ..app.base import Celery

logger = logging.getLogger("spinach_compat.events")

#: Events kept while the publisher thread catches up: more absorbs longer bursts, at the
#: cost of memory (an event is a few hundred bytes); past it the oldest are dropped.
BUFFER_LIMIT = 10_000
#: Seconds between attempts to reach the broker again during an outage: shorter notices the
#: end of an outage sooner, at the cost of more connection attempts.
RETRY_INTERVAL = 1.0
#: Seconds ``close`` waits for buffered events (``worker-offline``) to be published.
CLOSE_TIMEOUT = 5.0


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
        groups: set[str] | None = None, *, buffered: bool = False, **_: Any,
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
        self._given = connection or (channel.connection.client if channel is not None else None)
        self._task_events = True
        self._buffer: collections.deque[dict[str, Any]] = collections.deque(maxlen=BUFFER_LIMIT)
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._lock = threading.Lock()  # the connection, in the publishing thread
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None
        self._producer: Producer | None = None
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
        group = group_from(type)
        if (self.groups and group not in self.groups) or (
            group == "task" and not self._task_events
        ):
            return
        event = make_event(
            type, hostname=self.hostname, utcoffset=local_utcoffset(), pid=self.pid,
            clock=self.clock.forward(), **fields,
        )  # fmt: skip
        if not self.buffered:
            with self._lock:
                self._publish(event)
            return
        self._buffer.append(event)
        if self._thread is None:
            self._start_thread()
        self._wake.set()

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
        self._wake.set()
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
        """Publish the buffered events until closed (and the buffer is empty)."""
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._buffer:
                with self._lock:
                    published = self._publish(self._buffer.popleft())
                if not published:
                    self.dropped += len(self._buffer)
                    self._buffer.clear()
                    if self._closing.wait(RETRY_INTERVAL):
                        return
            if self._closing.is_set():
                return

    def _publish(self, event: dict[str, Any]) -> bool:
        """Publish one event (under ``_lock``); False, logged once per outage, if it failed."""
        try:
            producer = self._producer or self._connect()
            producer.publish(
                event, routing_key=routing_key(event["type"]), exchange=self.exchange_name,
                serializer=self.serializer, headers={"hostname": self.hostname},
                delivery_mode=1, retry=False,
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

    def flush(self, *_: Any, **__: Any) -> None:
        """Nothing to do: events are published as they come (Celery's API)."""

    def _connect(self) -> Producer:
        connection = self._given or self.app.connection_for_write()
        exchange = get_exchange(connection, self.exchange_name)
        producer = Producer(connection, exchange=exchange, serializer=self.serializer)
        self._connection, self._producer = connection, producer
        return producer

    def _disconnect(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
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
