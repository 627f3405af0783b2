"""Results in Redis, inside the engine's namespace, expiring after ``result_expires``.

A store is one script: it refuses to overwrite a SUCCESS, sets the value with its TTL and
publishes on the key's own channel, which ``AsyncResult.get`` listens to.

Celery interop (``spinach_compat.interop.results``): jobs that came from Celery's queues
also store their states under Celery's ``celery-task-meta-<id>``, and a task id without a
result here is looked up there (a task run by a legacy Celery worker).
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from spinach.brokers.redis_calls import script_callers

from .. import states
from ..exceptions import TimeoutError
from ..interop.results import (
    STORE,
    CeleryResults,
    celery_key,
    decode_celery_meta,
    wants_celery_result,
)
from .base import KeyValueBackend, next_wait, pending_meta

if TYPE_CHECKING:
    from ..app.base import Celery
    from ..app.context import Context


class RedisBackend(KeyValueBackend):
    """Results in Redis; ``get()`` waits on pub/sub, not by polling."""

    #: Seconds a thread's subscriber connection may sit unused before another thread's wait
    #: closes it (it connects again when its thread waits again). Longer spares a thread
    #: that waits now and then a reconnect; shorter frees sooner the connections of threads
    #: that stopped waiting (a web server's pool of request threads).
    listener_idle_timeout = 60.0

    def __init__(self, app: Celery, url: str, clock: Callable[[], float] = time.monotonic):
        import redis

        super().__init__(app)
        self._clock = clock
        self._all_listeners: weakref.WeakSet[ResultListener] = weakref.WeakSet()
        self._next_sweep = clock() + self.listener_idle_timeout
        self.client = redis.Redis.from_url(url)
        # Stores run on the worker's critical path: through the broker's lean script call.
        scripts, _ = script_callers(self.client, {"store": STORE})
        self._store = scripts["store"]  # publishes the meta on its key
        self.celery_results = CeleryResults(self._store)
        self._listeners = threading.local()  # a ResultListener per thread

    # -- Celery interop (see spinach_compat.interop.results) ------------------------------

    def store_result(
        self, task_id: str, result: Any, state: str, traceback: str | None = None,
        request: Context | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Store as every backend; for a job that came from Celery, in Celery's key too."""
        return super().store_result(task_id, result, state, traceback, request, **kwargs)

    def _save(self, task_id: str, meta: dict[str, Any], request: Context | None) -> None:
        """Store as every backend; for a job that came from Celery, in Celery's key too."""
        super()._save(task_id, meta, request)
        if wants_celery_result(request):
            self.celery_results.store(task_id, meta, self.expires, self.serializer)

    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        """The meta of ``task_id``: ours, else the one a Celery worker stored (one read)."""
        ours, celery = self.client.mget([self.key(task_id), celery_key(task_id)])
        if ours is not None:
            return self.decode_meta(ours)
        if celery is not None:
            return decode_celery_meta(celery, self.serializer, self.accept)
        return pending_meta(task_id)

    def get_state(self, task_id: str) -> str:
        """The stored state: ours (read without decoding the result), else Celery's."""
        ours, celery = self.client.mget([self.key(task_id), celery_key(task_id)])
        if ours is not None:
            return json.loads(ours)["status"]
        if celery is not None:
            return decode_celery_meta(celery, self.serializer, self.accept)["status"]
        return states.PENDING

    def _get(self, key: str) -> str | None:
        value = self.client.get(key)
        return value.decode() if isinstance(value, bytes) else value

    def _set_unless_success(self, key: str, value: str) -> bool:
        ttl = self.expires
        milliseconds = 0 if ttl is None else max(1, int(ttl * 1000))
        return bool(self._store(keys=[key], args=[value, milliseconds]))

    def _delete(self, key: str) -> None:
        self.client.delete(key)

    def _set(self, key: str, value: str) -> None:
        ttl = self.expires
        self.client.set(key, value, px=None if ttl is None else max(1, int(ttl * 1000)))

    def task_result_exists(self, task_id: str) -> bool:
        """Whether a state of ``task_id`` is stored: ours, or one a Celery worker stored."""
        return bool(self.client.exists(self.key(task_id), celery_key(task_id)))

    def wait_for(
        self, task_id: str, timeout: float | None = None, interval: float = 0.5
    ) -> dict[str, Any]:
        """The meta of ``task_id`` once ready: subscribed to its channels first, then read,
        then taken from the notification itself (a store publishes the meta it stored).

        Each thread keeps one subscriber connection for all its waits. ``interval`` bounds
        each wait for a notification, after which the value is read again (a safety net).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        channels = [self.key(task_id), celery_key(task_id)]
        with self._listener().in_use():  # not closed as idle meanwhile
            try:
                listener = self._subscribed_listener(channels, deadline)
            except TimeoutError:  # no time left to listen: what is stored now decides
                return self._ready_meta(task_id)
            try:
                return self._wait_on(listener, task_id, channels, deadline, interval)
            except TimeoutError:  # subscribed and in a known state: kept
                raise
            except BaseException:
                self._drop(listener)  # its state is unknown: the next wait gets a new one
                raise
            finally:
                self._unsubscribe(listener, channels)

    def _ready_meta(self, task_id: str) -> dict[str, Any]:
        """The meta of ``task_id`` if it is ready now, else TimeoutError."""
        meta = self.get_task_meta(task_id)
        if meta["status"] not in states.READY_STATES:
            raise TimeoutError("The operation timed out.")
        return meta

    def _wait_on(
        self,
        listener: ResultListener,
        task_id: str,
        channels: list[str],
        deadline: float | None,
        interval: float,
    ) -> dict[str, Any]:
        meta = self.get_task_meta(task_id)
        while meta["status"] not in states.READY_STATES:
            data = listener.next_message(channels, next_wait(deadline, interval))
            notified = self._notified_meta(data, channels) if data is not None else None
            meta = notified if notified is not None else self.get_task_meta(task_id)
        return meta

    def _notified_meta(self, data: tuple[bytes, bytes], channels: list[str]) -> dict[str, Any]:
        """The meta a store published on one of the wait's ``channels`` (ours, Celery's)."""
        channel, value = data
        if channel == channels[0].encode():
            return self.decode_meta(value)
        return decode_celery_meta(value, self.serializer, self.accept)

    def _unsubscribe(self, listener: ResultListener, channels: list[str]) -> None:
        """Leave the wait's channels; a connection lost meanwhile only costs the listener
        (the wait itself has its answer)."""
        try:
            listener.unsubscribe(channels)
        except RedisError:
            self._drop(listener)

    def _subscribed_listener(self, channels: list[str], deadline: float | None) -> ResultListener:
        """This thread's listener, subscribed to ``channels``; a connection the server
        closed since the last wait is replaced once."""
        try:
            return self._subscribe(channels, deadline)
        except RedisConnectionError:
            return self._subscribe(channels, deadline)  # on a new connection

    def _subscribe(self, channels: list[str], deadline: float | None) -> ResultListener:
        listener = self._listener()
        try:
            listener.subscribe(channels, deadline)
        except BaseException:
            self._drop(listener)  # its state is unknown: the next call gets a new one
            raise
        return listener

    def _drop(self, listener: ResultListener) -> None:
        self._listeners.__dict__.pop("listener", None)
        listener.close()

    def _listener(self) -> ResultListener:
        listener = getattr(self._listeners, "listener", None)
        if listener is None or listener.pid != os.getpid():
            listener = self._listeners.listener = ResultListener(self.client, self._clock)
            self._all_listeners.add(listener)
        self._close_idle_listeners()
        return listener

    def _close_idle_listeners(self) -> None:
        """Close the connections of the listeners unused for ``listener_idle_timeout``;
        looks at most every ``listener_idle_timeout`` seconds."""
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.listener_idle_timeout
        for listener in list(self._all_listeners):
            listener.close_if_unused_since(now - self.listener_idle_timeout)


class ResultListener:
    """One thread's subscriber connection, subscribed to the channels of one wait at a time.

    Subscribing waits for the server's confirmations, so a store that follows cannot be
    missed; unsubscribing does not wait: the confirmations, and messages of channels no
    longer awaited, are skipped by the next wait.
    """

    def __init__(self, client: Any, clock: Callable[[], float] = time.monotonic):
        self.pid = os.getpid()  # a forked child must not share the parent's socket
        self.pubsub = client.pubsub()
        self._clock = clock
        self._lock = threading.Lock()  # held by the owning thread while it waits
        self._last_used = clock()

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """Held by the owning thread during a wait, so the listener is not closed as idle."""
        with self._lock:
            try:
                yield
            finally:
                self._last_used = self._clock()

    def close_if_unused_since(self, since: float) -> bool:
        """Close the connection when no wait used it since ``since`` (from any thread; a
        closed listener connects again at its next wait). Whether it was closed."""
        if self.pid != os.getpid() or not self._lock.acquire(blocking=False):
            return False
        try:
            unused = self._last_used < since and self.pubsub.connection is not None
            if unused:
                self.pubsub.close()
            return unused
        finally:
            self._lock.release()

    def subscribe(self, channels: list[str], deadline: float | None) -> None:
        self.pubsub.subscribe(*channels)
        waiting = {channel.encode() for channel in channels}
        while waiting:
            message = self.pubsub.get_message(timeout=next_wait(deadline, 5.0))
            if message is None:
                raise TimeoutError("Redis did not confirm the result subscription in time.")
            if message["type"] == "subscribe":
                waiting.discard(message["channel"])

    def next_message(self, channels: list[str], timeout: float) -> tuple[bytes, bytes] | None:
        """The channel and data of the next message on ``channels``; None after ``timeout``
        seconds."""
        wanted = {channel.encode() for channel in channels}
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            message = self.pubsub.get_message(timeout=left)
            if message and message["type"] == "message" and message["channel"] in wanted:
                return message["channel"], message["data"]
        return None

    def unsubscribe(self, channels: list[str]) -> None:
        if self.pubsub.connection is not None:
            self.pubsub.unsubscribe(*channels)

    def close(self) -> None:
        self.pubsub.close()
