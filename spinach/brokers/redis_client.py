"""Talking to Redis: the clients the Redis broker builds, and the retries redis-py makes
inside a call logged once per outage instead of hidden.

redis-py retries a failed command by itself (see ``RedisBroker``'s ``command_retries``):
safe, since every script of the broker may run twice, but a short outage would go unseen.
``LoggedRetry`` (one server) and ``RetryLoggingCluster`` (a cluster) report those retries
to a ``HiddenRetries`` shared by every connection of a broker's client.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis as redis_py
from redis.backoff import AbstractBackoff
from redis.cluster import ClusterNode, RedisCluster, cleanup_kwargs
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ..forks import reset_after_fork

logger = logging.getLogger("spinach.brokers.redis")

#: What the broker talks through: one Redis server, or a Redis Cluster.
Client = redis_py.Redis | RedisCluster

#: URL schemes that make a Redis Cluster client, with the scheme redis-py is given instead.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def binary_client(client: redis_py.Redis) -> redis_py.Redis:
    """``client`` itself, or a twin on the same server when it decodes replies.

    Payloads are bytes that need not be UTF-8 (a bad one must reach the dead letters, not
    crash the reply parser), so the broker reads raw bytes.
    """
    kwargs = client.get_connection_kwargs()
    if not kwargs.get("decode_responses"):
        return client
    pool = client.connection_pool
    twin_pool = type(pool)(
        connection_class=pool.connection_class, **{**kwargs, "decode_responses": False}
    )
    return redis_py.Redis(connection_pool=twin_pool)


def cluster_twin(client: RedisCluster, cls: type[RedisCluster], **options: Any) -> RedisCluster:
    """A new cluster client of ``cls`` on the nodes of ``client``, with its connection
    settings and cluster retries, except for the ``options`` given."""
    kwargs = cleanup_kwargs(**client.get_connection_kwargs())
    kwargs.pop("redis_connect_func", None)  # a method of ``client``
    kwargs.setdefault("retry", copy.copy(client.retry))
    nodes = [ClusterNode(node.host, node.port) for node in client.get_nodes()]
    return cls(startup_nodes=nodes, **{**kwargs, **options})


def binary_cluster_client(client: RedisCluster) -> RedisCluster:
    """``client`` itself, or a twin on the same cluster when it decodes replies (see
    ``binary_client``); a twin logs its hidden retries, ``client`` is left as it is."""
    if not client.get_connection_kwargs().get("decode_responses"):
        return client
    return cluster_twin(client, RetryLoggingCluster, decode_responses=False)


def cluster_url(url: str) -> str | None:
    """The URL to give redis-py for a ``redis+cluster://`` URL; None for other URLs."""
    scheme, separator, rest = url.partition("://")
    if separator and scheme.lower() in CLUSTER_SCHEMES:
        return f"{CLUSTER_SCHEMES[scheme.lower()]}://{rest}"
    return None


def address(client: Client) -> str:
    """Where ``client`` connects, for log lines: host:port, a socket path or a cluster."""
    if isinstance(client, RedisCluster):
        return "cluster " + ",".join(node.name for node in client.get_nodes())
    kwargs = client.get_connection_kwargs()
    if kwargs.get("path"):
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def disconnect(client: Client) -> None:
    """Close the idle and busy connections of ``client``; it reconnects when used again."""
    if isinstance(client, RedisCluster):
        client.disconnect_connection_pools()
    else:
        client.connection_pool.disconnect()


def close(client: Client) -> None:
    """Close every connection of a client the broker built for itself."""
    if isinstance(client, RedisCluster):
        client.close()
    else:
        client.connection_pool.disconnect()


class HiddenRetries:
    """Logs the retries redis-py makes inside one call, once per outage.

    Shared by every connection (and so every thread) of a broker's client: the first
    failure that redis-py retries logs a warning, the next ones only count; the next call
    that goes through logs the recovery with the number of retries and how long it took.
    Thread-safe; a call without failure costs one attribute read.
    """

    def __init__(self, address: str = "Redis", clock: Callable[[], float] = time.monotonic):
        self.address = address
        self._clock = clock
        self._lock = threading.Lock()
        self._started: float | None = None
        #: Retries of the current outage (0 when there is none).
        self.retries = 0
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: a parent's thread may have held the lock at the fork."""
        self._lock = threading.Lock()

    @property
    def ongoing(self) -> bool:
        return self._started is not None

    def failed(self, exc: BaseException, address: str | None = None) -> None:
        """A call failed and redis-py is about to retry it."""
        with self._lock:
            self.retries += 1
            if self._started is not None:
                return
            self._started = self._clock()
        logger.warning(
            "Lost the connection to Redis at %s (%s: %s); retrying",
            address or self.address, type(exc).__name__, exc,
        )  # fmt: skip

    def succeeded(self) -> None:
        """A call went through: ends the outage, if there is one."""
        if self._started is None:  # the common case, without taking the lock
            return
        with self._lock:
            if self._started is None:
                return
            lasted, retries = self._clock() - self._started, self.retries
            self._started, self.retries = None, 0
        logger.warning(
            "Reconnected to Redis at %s after %d retried attempt(s) in %.1f s",
            self.address, retries, lasted,
        )  # fmt: skip


class LoggedRetry(Retry):
    """A redis-py ``Retry`` that reports its retries to a ``HiddenRetries``.

    Equal to the plain ``Retry`` of the same backoff, retries and errors, and retries
    exactly as it does. redis-py deep-copies a client's retry into each connection: the
    copies share the ``HiddenRetries``.
    """

    def __init__(
        self,
        backoff: AbstractBackoff,
        retries: int,
        hidden: HiddenRetries,
        supported_errors: tuple[type[Exception], ...] = (
            RedisConnectionError,
            RedisTimeoutError,
            TimeoutError,
        ),
    ):
        super().__init__(backoff, retries, supported_errors)
        self.hidden = hidden

    @classmethod
    def wrapping(cls, retry: Retry, hidden: HiddenRetries) -> LoggedRetry:
        """The twin of a plain ``Retry`` that also logs."""
        return cls(retry._backoff, retry._retries, hidden, retry._supported_errors)

    def __deepcopy__(self, memo: dict) -> LoggedRetry:
        backoff = copy.deepcopy(self._backoff, memo)
        return type(self)(backoff, self._retries, self.hidden, self._supported_errors)

    def call_with_retry(
        self,
        do: Callable[[], Any],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> Any:
        failures = 0

        def failed(error: Exception, *count: int) -> Any:
            nonlocal failures
            failures += 1
            if self._retries < 0 or failures <= self._retries:  # a retry follows
                self.hidden.failed(error)
            return fail(error, *count)

        # Only what the caller gave: redis-py 5 has neither is_retryable nor with_failure_count.
        extra: dict[str, Any] = {"is_retryable": is_retryable} if is_retryable else {}
        if with_failure_count:
            extra["with_failure_count"] = True
        result = super().call_with_retry(do, failed, **extra)
        self.hidden.succeeded()
        return result


def log_hidden_retries(client: redis_py.Redis, hidden: HiddenRetries) -> None:
    """Make the retries of ``client`` visible through ``hidden``.

    Only a plain ``Retry`` is replaced (by an equal ``LoggedRetry``, in place, so a client
    passed in logs the hidden retries of its other commands too); a subclass of the
    user's is left alone, and so is a retry that already logs.
    """
    retry = client.get_retry()
    if type(retry) is Retry:
        client.set_retry(LoggedRetry.wrapping(retry, hidden))


class RetryLoggingCluster(RedisCluster):
    """A ``RedisCluster`` whose retries after a node failed are reported to ``hidden``.

    The cluster client retries a command itself (after refreshing its view of the
    cluster), without going through a ``Retry``: its attempts are watched instead. Built
    by the broker only (from a URL, or as the binary twin of a client decoding replies).
    """

    hidden: HiddenRetries | None = None

    def _execute_command(self, target_node: ClusterNode, *args: Any, **kwargs: Any) -> Any:
        try:
            reply = super()._execute_command(target_node, *args, **kwargs)
        except self.ERRORS_ALLOW_RETRY as exc:
            if self.hidden is not None:
                self.hidden.failed(exc, target_node.name)
            raise
        if self.hidden is not None:
            self.hidden.succeeded()
        return reply
