"""A starting worker waiting for its broker, as Celery's ``broker_connection_*`` settings say.

``broker_connection_retry_on_startup`` (unset: ``broker_connection_retry``) allows the
retries, ``broker_connection_max_retries`` bounds the attempts (0 or None: forever) and
``broker_connection_timeout`` bounds each attempt's connection. The waits between attempts
are kombu's (2 s, then 2 s more each time, up to 30 s); ``broker_transport_options``'
``interval_start``, ``interval_step`` and ``interval_max`` (kombu's names) change them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kombu.utils.url import url_to_parts

from spinach.brokers.redis_layout import split_url
from spinach.worker_process.startup import ConnectionRetry

from ..app.connections import DEFAULT_CONNECT_TIMEOUT

if TYPE_CHECKING:
    from ..app.base import Celery


def connection_retry(conf: Any) -> ConnectionRetry:
    """The retries of a starting worker, from the app's settings."""
    on_startup = conf.get("broker_connection_retry_on_startup")
    enabled = conf.get("broker_connection_retry", True) if on_startup is None else on_startup
    options = conf.get("broker_transport_options") or {}
    default = ConnectionRetry()
    return ConnectionRetry(
        enabled=bool(enabled),
        max_attempts=conf.get("broker_connection_max_retries", default.max_attempts),
        interval_start=float(options.get("interval_start", default.interval_start)),
        interval_step=float(options.get("interval_step", default.interval_step)),
        interval_max=float(options.get("interval_max", default.interval_max)),
    )


def broker_connect(app: Celery) -> Callable[[], None]:
    """One connection attempt to the app's broker: a PING bounded by
    ``broker_connection_timeout`` (Redis), then the broker's own start (its scripts)."""
    broker = app.engine.broker
    url = app.conf.broker_url
    if url_to_parts(url).scheme == "memory":
        return broker.start
    timeout = app.conf.get("broker_connection_timeout") or DEFAULT_CONNECT_TIMEOUT
    if url.startswith("redis+socket:"):
        url = "unix" + url[len("redis+socket") :]

    def connect() -> None:
        import redis

        client = redis.Redis.from_url(
            split_url(url)[0], socket_connect_timeout=timeout, socket_timeout=timeout
        )
        try:
            client.ping()
        finally:
            client.close()
        broker.start()

    return connect
