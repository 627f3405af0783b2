"""Events published to a Redis broker without kombu's per-message work.

kombu's Redis transport emulates the events' fanout exchange with pub/sub: a message is
one ``PUBLISH`` of a JSON envelope (the body in base64, its content type and encoding, the
headers, and properties with a fresh delivery tag) on a channel named after the exchange
and routing key. For a worker's event batches (hundreds of kilobytes when busy) most of the
publisher's time went to kombu re-encoding the body: the envelope's JSON scanning the
base64 text again, and strings encoded back and forth. ``RedisFanout`` writes the same
envelope by concatenation (base64 needs no JSON escaping) and publishes it with the client
and the channel names kombu itself would use (key prefix, fanout prefix and patterns,
Sentinel), so that kombu's receivers (Celery's ``EventReceiver``, Flower) read what they
would have read. Other transports keep kombu's publishing.
"""

from __future__ import annotations

import binascii
import json
import uuid
from typing import Any

from kombu import Connection


class RedisFanout:
    """Publishes JSON bodies to ``exchange`` of a kombu Redis ``channel`` as kombu would."""

    def __init__(self, channel: Any, exchange: str, headers: dict[str, Any]):
        self.channel = channel
        self.exchange = exchange
        self._headers = _dumps(headers)
        self._topics: dict[str, list[str]] = {}
        self._client: Any = None

    @classmethod
    def for_connection(
        cls, connection: Connection, exchange: str, headers: dict[str, Any]
    ) -> RedisFanout | None:
        """A publisher on ``connection``'s default channel, or None if its transport is not
        kombu's Redis (or its ``body_encoding`` is not the default, base64)."""
        if getattr(connection.transport, "driver_type", None) != "redis":
            return None  # before importing kombu's Redis transport, which takes a second
        from kombu.transport import redis as kombu_redis

        if not isinstance(connection.transport, kombu_redis.Transport):
            return None
        channel = connection.default_channel
        if getattr(channel, "body_encoding", None) != "base64":
            return None
        return cls(channel, exchange, headers)

    def envelope(self, body: str, routing_key: str) -> bytes:
        """The message kombu's Redis transport publishes for the JSON text ``body``."""
        text = binascii.b2a_base64(body.encode(), newline=False)
        info = _dumps({"exchange": self.exchange, "routing_key": routing_key})
        return b"".join((
            b'{"body": "', text, b'", "content-encoding": "utf-8", "content-type": '
            b'"application/json", "headers": ', self._headers.encode(),
            b', "properties": {"delivery_mode": 1, "delivery_info": ', info.encode(),
            b', "priority": 0, "body_encoding": "base64", "delivery_tag": "',
            str(uuid.uuid4()).encode(), b'"}}',
        ))  # fmt: skip

    def publish(self, body: str, routing_key: str) -> int:
        """One ``PUBLISH`` per topic kombu would publish the message to; how many clients
        received it (Redis counts channel and pattern subscribers); raises the client's
        error if Redis is away."""
        topics = self._topics.get(routing_key)
        if topics is None:
            topics = self._topics[routing_key] = list(
                self.channel._get_publish_topics(self.exchange, routing_key)
            )
        # a memoryview: redis-py sends it as it is, where hiredis would copy it into the
        # command (a worker's messages are hundreds of kilobytes)
        payload = memoryview(self.envelope(body, routing_key))
        client = self._client
        if client is None:  # kombu makes one per message, on the channel's pool: kept here
            with self.channel.conn_or_acquire() as client:
                self._client = client
        return sum(client.publish(topic, payload) for topic in topics)


def _dumps(value: Any) -> str:
    """JSON as kombu writes its envelopes (the json module's defaults)."""
    return json.dumps(value)
