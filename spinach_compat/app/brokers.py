"""From a Celery ``broker_url`` to a native spinach broker: the one module of the facade
that knows the broker classes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kombu.utils.url import maybe_sanitize_url, url_to_parts

from spinach.brokers.base import Broker
from spinach.brokers.memory import MemoryBroker

from ..exceptions import ImproperlyConfigured, UnsupportedFeature

REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", "redis+socket"})


def broker_from_url(url: str | None, transport_options: Mapping[str, Any] | None = None) -> Broker:
    """``memory://`` -> MemoryBroker; ``redis://``, ``rediss://``, ``unix://`` -> RedisBroker,
    spread over ``?partitions=N`` or ``broker_transport_options['partitions']`` (see
    ``spinach.brokers.redis_partitions``)."""
    if not url:
        raise ImproperlyConfigured(
            "no broker_url configured: spinach_compat needs 'memory://' or 'redis://...' "
            "(Celery's default amqp:// is not supported)"
        )
    scheme = url_to_parts(url).scheme
    if scheme == "memory":
        return MemoryBroker()
    if scheme in REDIS_SCHEMES:
        from spinach.brokers.redis import RedisBroker  # lazily: memory users need no redis

        if scheme == "redis+socket":
            url = "unix" + url[len("redis+socket") :]
        return RedisBroker(url, partitions=(transport_options or {}).get("partitions"))
    raise UnsupportedFeature(
        f"broker_url={maybe_sanitize_url(url)!r}: the {scheme or url!r} transport is not "
        "supported by spinach_compat; use redis://, rediss://, unix://, redis+socket:// or "
        "memory:// (see migration_guide/)"
    )


def other_process(broker: Broker, url: str | None, worker_id: str) -> Broker:
    """A broker on the storage of ``broker`` acting as another worker process named
    ``worker_id`` (unbound to a namespace yet): a peer of a ``MemoryBroker``, whose store
    only its peers share; else a new broker for ``url`` (``broker_url``)."""
    if isinstance(broker, MemoryBroker):
        return broker.peer(worker_id=worker_id)
    other = broker_from_url(url, {"partitions": getattr(broker, "partition_count", None)})
    other.worker_id = worker_id
    return other
