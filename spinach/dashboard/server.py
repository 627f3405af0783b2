"""Serving the dashboard with uvicorn: in the calling thread (the command) or in a thread
of its own (tests, and applications on the in-process broker)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import uvicorn

from ..brokers.base import Broker
from ..worker_process.startup import broker_address
from .api import ResultLookup, Source
from .app import Options, create_app

logger = logging.getLogger("spinach.dashboard")

#: Seconds the dashboard waits for Redis to answer a command or a connection: a short wait
#: shows the outage banner sooner, a long one tolerates a slow server.
REDIS_TIMEOUT = 3.0


def dashboard_source(broker: Broker, results: ResultLookup | None = None) -> Source:
    """What the dashboard reads: a Redis ``broker`` is copied with short timeouts and no
    retries of its own (the page polls again), so an outage shows at once."""
    return Source(_quick_broker(broker), broker_address(broker), results)


def _quick_broker(broker: Broker) -> Broker:
    redis_client = getattr(broker, "redis", None)
    kwargs = getattr(getattr(redis_client, "connection_pool", None), "connection_kwargs", None)
    if not isinstance(kwargs, dict):  # a MemoryBroker, or a cluster: used as it is
        return broker
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from ..brokers.redis import RedisBroker

    pool_class = type(redis_client.connection_pool)  # type: ignore[union-attr]
    connection_class = redis_client.connection_pool.connection_class  # type: ignore[union-attr]
    options = kwargs | {
        "socket_timeout": REDIS_TIMEOUT, "socket_connect_timeout": REDIS_TIMEOUT,
        "retry": Retry(NoBackoff(), 0), "connection_class": connection_class,
    }  # fmt: skip
    options.pop("retry_on_error", None)
    client = redis.Redis(connection_pool=pool_class(**options))
    quick = RedisBroker(client, clock=broker.now, partitions=getattr(broker, "partition_count", 1))
    quick.set_namespace(broker.namespace)
    return quick


def _config(source: Source, options: Options, host: str, port: int) -> uvicorn.Config:
    app = create_app(source, options)
    # log_config=None: uvicorn leaves the logging setup alone; its warnings go to the root
    # logger, formatted as the command's other records.
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, log_config=None
    )


def serve(
    source: Source, options: Options, host: str, port: int, on_ready: Callable[[], None]
) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn's own handling: a graceful stop), calling
    ``on_ready`` once it listens."""
    server = _ReadyServer(_config(source, options, host, port))
    server.on_ready = on_ready
    server.run()


class DashboardServer:
    """The dashboard served by a thread of its own: ``start``, then ``stop``."""

    def __init__(self, source: Source, options: Options, host: str = "127.0.0.1", port: int = 0):
        self._server = _ReadyServer(_config(source, options, host, port))
        self._thread = threading.Thread(target=self._server.run, name="spinach-dashboard")

    @property
    def url(self) -> str:
        """Its address, once started (a ``port`` of 0 picks a free one)."""
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout: float = 15.0) -> DashboardServer:
        self._thread.start()
        if not self._server.ready.wait(timeout) or not self._server.started:
            self.stop()
            raise RuntimeError("the dashboard did not start (see the log above)")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join()

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


class _ReadyServer(uvicorn.Server):
    """A uvicorn server that calls ``on_ready`` once it listens, and sets ``ready`` once it
    listens or failed to."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.ready = threading.Event()
        self.on_ready: Callable[[], None] = lambda: None

    def run(self, sockets: Any = None) -> None:
        try:
            super().run(sockets)
        finally:
            self.ready.set()  # a failed start too: ``start`` then sees it

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.on_ready()
        self.ready.set()
