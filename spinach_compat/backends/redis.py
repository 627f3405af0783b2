"""Results in Redis, inside the engine's namespace, expiring after ``result_expires``.

A store is one script: it refuses to overwrite a SUCCESS, sets the value with its TTL and
publishes on the key's own channel, which ``AsyncResult.get`` listens to.

Celery interop (``spinach_compat.interop.results``): jobs that came from Celery's queues
also store their states under Celery's ``celery-task-meta-<id>``, and a task id without a
result here is looked up there (a task run by a legacy Celery worker).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from kombu.utils import json as kombu_json
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from spinach.brokers.redis_calls import script_callers

from .. import states
from ..exceptions import TimeoutError
from ..interop.results import STORE, CeleryResults, celery_key, wants_celery_result
from .base import KeyValueBackend, next_wait


class RedisBackend(KeyValueBackend):
    """Results in Redis; ``get()`` waits on pub/sub, not by polling."""

    def __init__(self, app: Any, url: str):
        import redis

        super().__init__(app)
        self.client = redis.Redis.from_url(url)
        # Stores run on the worker's critical path: through the broker's lean script call.
        scripts, _ = script_callers(self.client, {"store": STORE})
        self._store = scripts["store"]  # publishes the meta on its key
        self.celery_results = CeleryResults(self._store)
        self._listeners = threading.local()  # a ResultListener per thread

    # -- Celery interop (see spinach_compat.interop.results) ------------------------------

    def store_result(
        self, task_id: str, result: Any, state: str, traceback: str | None = None,
        request: Any = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Store as every backend; for a job that came from Celery, in Celery's key too."""
        stored = super().store_result(task_id, result, state, traceback, request, **kwargs)
        if wants_celery_result(request):
            self.celery_results.store(task_id, state, stored, traceback, self.expires)
        return stored

    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        """The meta of ``task_id``: ours, else the one a Celery worker stored (one read)."""
        ours, celery = self.client.mget([self.key(task_id), celery_key(task_id)])
        raw = ours if ours is not None else celery
        if raw is None:
            return super().get_task_meta(task_id)  # PENDING
        return kombu_json.loads(raw.decode() if isinstance(raw, bytes) else raw)

    def _get(self, key: str) -> str | None:
        value = self.client.get(key)
        return value.decode() if isinstance(value, bytes) else value

    def _set_unless_success(self, key: str, value: str) -> bool:
        ttl = self.expires
        milliseconds = 0 if ttl is None else max(1, int(ttl * 1000))
        return bool(self._store(keys=[key], args=[value, milliseconds]))

    def _delete(self, key: str) -> None:
        self.client.delete(key)

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
        listener = self._subscribed_listener(channels, deadline)
        try:
            meta = self.get_task_meta(task_id)
            while meta["status"] not in states.READY_STATES:
                data = listener.next_message(channels, next_wait(deadline, interval))
                meta = kombu_json.loads(data) if data is not None else self.get_task_meta(task_id)
            return meta
        except TimeoutError:  # subscribed and in a known state: kept
            raise
        except BaseException:
            self._drop(listener)  # its state is unknown: the next wait gets a new one
            raise
        finally:
            self._unsubscribe(listener, channels)

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
            listener = self._listeners.listener = ResultListener(self.client)
        return listener


class ResultListener:
    """One thread's subscriber connection, subscribed to the channels of one wait at a time.

    Subscribing waits for the server's confirmations, so a store that follows cannot be
    missed; unsubscribing does not wait: the confirmations, and messages of channels no
    longer awaited, are skipped by the next wait.
    """

    def __init__(self, client: Any):
        self.pid = os.getpid()  # a forked child must not share the parent's socket
        self.pubsub = client.pubsub()

    def subscribe(self, channels: list[str], deadline: float | None) -> None:
        self.pubsub.subscribe(*channels)
        waiting = {channel.encode() for channel in channels}
        while waiting:
            message = self.pubsub.get_message(timeout=next_wait(deadline, 5.0))
            if message is None:
                raise TimeoutError("Redis did not confirm the result subscription in time.")
            if message["type"] == "subscribe":
                waiting.discard(message["channel"])

    def next_message(self, channels: list[str], timeout: float) -> str | None:
        """The data of the next message on ``channels``; None after ``timeout`` seconds."""
        wanted = {channel.encode() for channel in channels}
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            message = self.pubsub.get_message(timeout=left)
            if message and message["type"] == "message" and message["channel"] in wanted:
                data = message["data"]
                return data.decode() if isinstance(data, bytes) else data
        return None

    def unsubscribe(self, channels: list[str]) -> None:
        if self.pubsub.connection is not None:
            self.pubsub.unsubscribe(*channels)

    def close(self) -> None:
        self.pubsub.close()
