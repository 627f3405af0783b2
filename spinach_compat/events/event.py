"""One event: a dict with ``type``, ``timestamp`` and fields; the exchange events go to.

The wire format is Celery's, so that ``celery events``, Flower and a project's own
``EventReceiver`` read what facade processes send: every event carries ``type``,
``hostname``, ``utcoffset`` (hours), ``pid``, ``clock`` (a Lamport clock) and ``timestamp``
(Unix time) besides its own fields; it is published to the ``event_exchange`` (``celeryev``)
with the type as routing key (``task.succeeded``).
"""

from __future__ import annotations

import time
from typing import Any

from kombu import Connection, Exchange

#: Celery's default ``event_exchange``.
EXCHANGE_NAME = "celeryev"

#: The exchange as declared on AMQP; ``get_exchange`` adapts it to the transport.
event_exchange = Exchange(EXCHANGE_NAME, type="topic")

#: Transports whose topic exchanges kombu emulates poorly: events go through a fanout
#: there (Redis pub/sub), as Celery does, so that every receiver sees every event.
_FANOUT_TRANSPORTS = frozenset({"redis", "gcpubsub"})


def Event(type: str, _fields: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An event of ``type``: ``_fields`` and ``fields``, stamped with the time unless given."""
    event = {**(_fields or {}), **fields}
    event.setdefault("timestamp", time.time())
    event["type"] = type
    return event


def group_from(type: str) -> str:
    """The group of an event type: ``task`` for ``task-sent``, ``worker`` for ``worker-online``."""
    return type.partition("-")[0]


def get_exchange(conn: Connection, name: str = EXCHANGE_NAME) -> Exchange:
    """The events exchange named ``name`` for ``conn``'s transport (fanout on Redis)."""
    kind = "fanout" if conn.transport.driver_type in _FANOUT_TRANSPORTS else "topic"
    return Exchange(name, type=kind, durable=event_exchange.durable)


def utcoffset() -> float:
    """The local offset to UTC in hours, west positive, as Celery's events carry it."""
    seconds_west = time.altzone if time.localtime().tm_isdst else time.timezone
    return seconds_west / 3600


def routing_key(type: str) -> str:
    """The routing key of an event type: ``task-succeeded`` -> ``task.succeeded``."""
    return type.replace("-", ".")
