"""``app.connection()`` and its siblings: a kombu connection to the broker, as Celery's.

Projects use it for health checks (``with app.connection() as conn:
conn.ensure_connection(max_retries=1)``) or to reach the broker's Redis client
(``conn.default_channel.client``). It is a plain ``kombu.Connection`` to ``broker_url``:
messages published through it are kombu messages, which the facade's workers do not read
(only a worker bridging Celery's queues does). The kombu producer and connection pools
(``app.amqp``, ``app.pool``, ``app.producer_pool``) are refused: publishing through them
would bypass the facade's jobs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kombu import Connection
from kombu.utils.url import url_to_parts

from spinach.brokers.redis_layout import split_url

from ..exceptions import ImproperlyConfigured, UnsupportedFeature
from .brokers import REDIS_SCHEMES

if TYPE_CHECKING:
    from .base import Celery

#: Celery's default ``broker_connection_timeout`` (seconds), used when the setting is unset:
#: how long a health check waits for the broker before it fails.
DEFAULT_CONNECT_TIMEOUT = 4.0


def broker_connection(
    app: Celery, url: str | None, userid: str | None = None, password: str | None = None,
    virtual_host: str | None = None, port: int | None = None, ssl: Any = None,
    connect_timeout: float | None = None, transport: str | None = None,
    transport_options: dict | None = None, heartbeat: float | None = None,
    login_method: str | None = None, failover_strategy: Any = None, **_: Any,
) -> Connection:  # fmt: skip
    """A lazy kombu connection to ``url``; unset arguments come from the ``broker_*``
    settings, as in Celery (which ignores other keyword arguments too)."""
    conf = app.conf
    timeout = _either(connect_timeout, conf.get("broker_connection_timeout"))
    return Connection(
        kombu_url(url), userid or conf.get("broker_user"),
        password or conf.get("broker_password"), virtual_host or conf.get("broker_vhost"),
        port or conf.get("broker_port"), transport=transport or conf.get("broker_transport"),
        ssl=_either(ssl, conf.get("broker_use_ssl"), False), heartbeat=heartbeat,
        login_method=login_method or conf.get("broker_login_method"),
        failover_strategy=failover_strategy or conf.get("broker_failover_strategy"),
        transport_options={**(conf.get("broker_transport_options") or {}),
                           **(transport_options or {})},
        connect_timeout=_either(timeout, DEFAULT_CONNECT_TIMEOUT),
    )  # fmt: skip


def kombu_url(url: str | None) -> str:
    """The broker URL as kombu names it (``unix://`` is kombu's ``redis+socket://``, no
    ``partitions`` parameter); a clear error for what the facade does not take as a broker."""
    if not url:
        raise ImproperlyConfigured(
            "no broker_url configured: app.connection() needs 'memory://' or 'redis://...' "
            "(Celery's default amqp:// is not supported)"
        )
    scheme = url_to_parts(url).scheme
    if scheme == "unix":
        return "redis+socket" + url[len("unix") :]
    if scheme != "memory" and scheme not in REDIS_SCHEMES:
        raise UnsupportedFeature(
            f"broker scheme {scheme!r} is not supported by spinach_compat: use redis:// or "
            "memory:// (see migration_guide/)"
        )
    return split_url(url)[0]  # kombu refuses the native broker's ?partitions=N


@contextlib.contextmanager
def connection_or_acquire(
    app: Celery, connection: Connection | None = None
) -> Iterator[Connection]:
    """``connection``, else a new one closed after (no pool: see the module docstring)."""
    if connection is not None:
        yield connection
        return
    with app.connection_for_write() as fresh:
        yield fresh


def _either(*values: Any) -> Any:
    """The first value that is not None (Celery's ``app.either``)."""
    return next((value for value in values if value is not None), None)
