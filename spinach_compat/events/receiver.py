"""``EventReceiver``: reads Celery events from the broker (the facade's and Celery's).

A kombu consumer of a queue of its own bound to the ``event_exchange``, as Celery's
receiver: ``capture()`` calls ``handlers[type]`` (else ``handlers["*"]``) with each event,
its ``timestamp`` brought to this machine's time zone and ``local_received`` added. What
``spinach-compat events --dump`` and ``app.events.Receiver`` use.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from kombu import Consumer, Queue
from kombu.clocks import LamportClock
from kombu.connection import maybe_channel
from kombu.mixins import ConsumerMixin

from .event import EXCHANGE_NAME, get_exchange, utcoffset

if TYPE_CHECKING:
    from ..app.base import Celery

Handler = Callable[[dict[str, Any]], Any]

#: Celery's defaults of the ``event_queue_*`` settings, when the app has none.
QUEUE_DEFAULTS = {"prefix": "celeryev", "ttl": 5.0, "expires": 60.0, "exclusive": True}


class EventReceiver(ConsumerMixin):
    """Capture events from ``channel`` (a kombu channel or connection) into ``handlers``.

    ``wakeup`` is accepted: facade workers send heartbeats on their own, every 2 seconds.
    """

    def __init__(
        self, channel: Any, handlers: Mapping[str, Handler] | None = None,
        routing_key: str = "#", node_id: str | None = None, app: Celery | None = None,
        queue_prefix: str | None = None, accept: set[str] | None = None, **_: Any,
    ):  # fmt: skip
        from .._state import get_current_app

        self.app = app if app is not None else get_current_app()
        conf = self.app.conf
        self.channel = maybe_channel(channel)
        self.connection: Any = self.channel.connection.client  # the kombu Connection
        self.handlers = dict(handlers or {})
        self.node_id = node_id or str(uuid.uuid4())
        prefix = queue_prefix or conf.get("event_queue_prefix") or QUEUE_DEFAULTS["prefix"]
        exchange = get_exchange(self.connection, conf.get("event_exchange") or EXCHANGE_NAME)
        self.queue = Queue(
            f"{prefix}.{self.node_id}", exchange=exchange, routing_key=routing_key,
            auto_delete=True, durable=False, exclusive=_setting(conf, "exclusive"),
            message_ttl=_setting(conf, "ttl"), expires=_setting(conf, "expires"),
        )  # fmt: skip
        self.accept = accept or {conf.get("event_serializer") or "json", "json"}
        self.clock = LamportClock()

    def process(self, type: str, event: dict[str, Any]) -> None:
        """Hand ``event`` to its handler (``handlers[type]``, else ``handlers["*"]``)."""
        handler = self.handlers.get(type) or self.handlers.get("*")
        if handler is not None:
            handler(event)

    def get_consumers(self, consumer: Any, channel: Any) -> list[Consumer]:
        return [consumer(queues=[self.queue], callbacks=[self._receive], no_ack=True,
                         accept=self.accept)]  # fmt: skip

    def capture(self, limit: int | None = None, timeout: float | None = None,
                wakeup: bool = True) -> None:  # fmt: skip
        """Capture events until ``should_stop`` is set (or ``limit`` events, or a
        ``timeout`` without any: then kombu's ``socket.timeout``)."""
        for _ in self.itercapture(limit=limit, timeout=timeout, wakeup=wakeup):
            pass

    def itercapture(self, limit: int | None = None, timeout: float | None = None,
                    wakeup: bool = True) -> Iterator[Any]:  # fmt: skip
        return self.consume(limit=limit, timeout=timeout)

    def event_from_message(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """``(type, event)`` of a message body: clock synced, timestamp localized."""
        type = body["type"]
        if "clock" in body:
            self.clock.adjust(body["clock"])
        else:
            body["clock"] = self.clock.forward()
        if "utcoffset" in body and "timestamp" in body:
            body["timestamp"] = body["timestamp"] - (body["utcoffset"] - utcoffset()) * 3600
        body["local_received"] = time.time()
        return type, body

    def _receive(self, body: Any, message: Any) -> None:
        events = body if isinstance(body, list) else [body]  # grouped events come as lists
        for event in events:
            self.process(*self.event_from_message(event))


def _setting(conf: Any, name: str) -> Any:
    value = conf.get(f"event_queue_{name}")
    return QUEUE_DEFAULTS[name] if value is None else value
