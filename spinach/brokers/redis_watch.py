"""``RedisBroker.watch``: the values ``publish_value`` stores, heard on Redis pub/sub.

``publish_value`` publishes each value on a channel named after its key. A watch subscribes
to the channels of its keys and waits for the server's confirmations before its block
starts, so a value published then is not missed. Each thread keeps one subscriber
connection (a ``Listener``) for all its watches; connections unused for
``listener_idle_timeout`` seconds are closed by another thread's next watch (a web server's
pool of request threads), and connect again when their thread watches again.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .base import Watch

#: Longest single wait for the server's subscription confirmation, in seconds, when the
#: watch has no deadline. Longer rides out a slow server; shorter reports a lost one sooner.
CONFIRM_WAIT = 5.0


def _left(deadline: float | None, longest: float) -> float:
    """Seconds to wait next: ``longest``, cut to what is left before ``deadline``
    (``time.monotonic``); the builtin TimeoutError past it."""
    if deadline is None:
        return longest
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("Redis did not confirm the subscription in time.")
    return min(remaining, longest)


class Listener:
    """One thread's subscriber connection, subscribed to the channels of one watch at a time.

    Subscribing waits for the server's confirmations; unsubscribing does not: the
    confirmations, and messages of channels no longer watched, are skipped by the next
    watch.
    """

    def __init__(self, client: Any, clock: Callable[[], float] = time.monotonic):
        self.pid = os.getpid()  # a forked child must not share the parent's socket
        self.pubsub = client.pubsub()
        self._clock = clock
        self._lock = threading.Lock()  # held by the owning thread while it watches
        self._last_used = clock()

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """Held by the owning thread during a watch, so it is not closed as idle."""
        with self._lock:
            try:
                yield
            finally:
                self._last_used = self._clock()

    def close_if_unused_since(self, since: float) -> bool:
        """Close the connection when no watch used it since ``since`` (from any thread; a
        closed listener connects again at its next watch). Whether it was closed."""
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
            message = self.pubsub.get_message(timeout=_left(deadline, CONFIRM_WAIT))
            if message is None:
                raise TimeoutError("Redis did not confirm the subscription in time.")
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


class _ListenerWatch(Watch):
    """A watch on one listener; a read that fails leaves the listener in an unknown
    state (``broken``): it is then dropped rather than used again."""

    def __init__(self, listener: Listener, names: dict[str, str]):
        self.listener = listener
        self.names = names  # by channel
        self.channels = list(names)
        self.broken = False

    def next(self, timeout: float) -> tuple[str, bytes] | None:
        self.broken = True
        data = self.listener.next_message(self.channels, timeout)
        self.broken = False
        return None if data is None else (self.names[data[0].decode()], data[1])


class Watchers:
    """The listeners of one broker's watches: one per thread, closed when idle."""

    def __init__(self, client: Any, clock: Callable[[], float], idle_timeout: float):
        self.client = client
        #: Seconds a thread's listener may sit unused before another thread's watch closes
        #: it: longer spares a thread that watches now and then a reconnect, shorter frees
        #: sooner the connections of threads that stopped watching.
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._all: weakref.WeakSet[Listener] = weakref.WeakSet()
        self._next_sweep = clock() + idle_timeout
        self._local = threading.local()  # a Listener per thread

    @contextmanager
    def watch(self, names: dict[str, str], timeout: float | None) -> Iterator[Watch]:
        """Watch the channels ``names`` maps to watched names (see ``Broker.watch``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        channels = list(names)
        with self.listener().in_use():  # not closed as idle meanwhile
            listener = self._subscribed(channels, deadline)
            watch = _ListenerWatch(listener, names)
            try:
                yield watch
            finally:
                if watch.broken:
                    self._drop(listener)  # the next watch of the thread gets a new one
                else:
                    self._unsubscribe(listener, channels)

    def listener(self) -> Listener:
        """This thread's listener (made when it has none, or after a fork); sweeps the
        idle ones of other threads now and then."""
        listener = getattr(self._local, "listener", None)
        if listener is None or listener.pid != os.getpid():
            listener = self._local.listener = Listener(self.client, self._clock)
            self._all.add(listener)
        self._close_idle()
        return listener

    def close_all(self) -> None:
        """Close every listener's connection (each connects again at its next watch)."""
        for listener in list(self._all):
            listener.close_if_unused_since(float("inf"))

    def _subscribed(self, channels: list[str], deadline: float | None) -> Listener:
        """This thread's listener, subscribed to ``channels``; a connection the server
        closed since the last watch is replaced once."""
        try:
            return self._subscribe(channels, deadline)
        except RedisConnectionError:
            return self._subscribe(channels, deadline)  # on a new connection

    def _subscribe(self, channels: list[str], deadline: float | None) -> Listener:
        listener = self.listener()
        try:
            listener.subscribe(channels, deadline)
        except BaseException:
            self._drop(listener)  # its state is unknown: the next call gets a new one
            raise
        return listener

    def _unsubscribe(self, listener: Listener, channels: list[str]) -> None:
        """Leave the watch's channels; a connection lost meanwhile only costs the listener
        (the watch itself is over)."""
        try:
            listener.unsubscribe(channels)
        except RedisError:
            self._drop(listener)

    def _drop(self, listener: Listener) -> None:
        if getattr(self._local, "listener", None) is listener:
            del self._local.listener
        listener.close()

    def _close_idle(self) -> None:
        """Close the listeners unused for ``idle_timeout``; looks at most every
        ``idle_timeout`` seconds."""
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.idle_timeout
        for listener in list(self._all):
            listener.close_if_unused_since(now - self.idle_timeout)
