"""Running the broker's Lua scripts with as little client work as a call allows.

On one Redis server a script call goes through ``LeanScript``: a connection taken from a
small stack of our own (no pool bookkeeping per call), the command packed by hiredis in
one go, sent, and its reply read. That is what redis-py does for ``EVALSHA`` too, minus
its per-call pool checks and instrumentation, which cost more than the Lua script itself
on a small machine (see ``bench/README.md``). The connections are made by the client's
own connection class with its settings, so TLS, Unix sockets, passwords, health checks
and the client's ``Retry`` (with ``LoggedRetry``'s logging) behave as with redis-py.

A cluster keeps redis-py's ``Script``: its client routes each call to a node.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

import hiredis
import redis as redis_py
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from ..forks import reset_after_fork
from .redis_client import Client


class ConnectionStash:
    """The connections ``LeanScript`` calls go through, for one ``redis.Redis`` client.

    A call takes the most recently used idle connection (or makes one) and puts it back
    after its reply: as many connections as calls ever ran at once. A call interrupted
    before its reply (an error, an asynchronous exception from a time limit) closes its
    connection first, so no reply is ever read by the wrong call. Thread-safe: ``deque``
    appends and pops are atomic. A forked child starts with no connection.
    """

    def __init__(self, client: redis_py.Redis):
        pool = client.connection_pool
        self._connection_class = pool.connection_class
        self._connection_kwargs = pool.connection_kwargs
        self._idle: deque[AbstractConnection] = deque()
        self._made: weakref.WeakSet[AbstractConnection] = weakref.WeakSet()
        self._lock = threading.Lock()
        reset_after_fork(self)

    def call(self, *args: Any) -> Any:
        """Send one command (``str``, ``bytes``, ``int`` or ``float`` arguments); its reply.

        A connection the server closed while it sat idle (its ``timeout``, a restart) fails
        the first command sent on it: that command runs again once on a new connection,
        as redis-py does when it checks a pooled connection before use. Safe because every
        script of the broker may run twice (see ``spinach.brokers.redis``).
        """
        packed = [hiredis.pack_command(args)]
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = self._new_connection()
        try:
            was_open = _is_open(connection)
            try:
                return _call_on(connection, packed)
            except RedisConnectionError:
                if not was_open:
                    raise
                return _call_on(connection, packed)  # on a new connection
        finally:
            self._idle.append(connection)

    def disconnect(self) -> None:
        """Close every connection, busy ones too; each reconnects when used again."""
        with self._lock:
            connections = list(self._made)
        for connection in connections:
            connection.disconnect()

    def _new_connection(self) -> AbstractConnection:
        connection = self._connection_class(**self._connection_kwargs)
        with self._lock:
            self._made.add(connection)
        return connection

    def _after_fork(self) -> None:
        """In a forked child: the parent's sockets are not ours to use."""
        self._idle = deque()
        self._made = weakref.WeakSet()
        self._lock = threading.Lock()


def _call_on(connection: AbstractConnection, packed: list[bytes]) -> Any:
    """One command on ``connection``, retried as its ``Retry`` says; a call that ends
    without its reply (an error, an asynchronous exception) closes the connection."""
    try:
        return connection.retry.call_with_retry(
            lambda: _send(connection, packed), lambda error, *_: connection.disconnect()
        )
    except ResponseError:  # an error reply, read in full: the connection is fine
        raise
    except BaseException:
        connection.disconnect()
        raise


def _is_open(connection: AbstractConnection) -> bool:
    """Whether ``connection`` has a socket (from an earlier call) rather than none yet."""
    return getattr(connection, "_sock", None) is not None


def _send(connection: AbstractConnection, packed: list[bytes]) -> Any:
    connection.send_packed_command(packed)
    return connection.read_response()


class LeanScript:
    """A Lua script run by SHA through a ``ConnectionStash``, loaded again on ``NOSCRIPT``
    (after a server restart or ``SCRIPT FLUSH``). Called like redis-py's ``Script``."""

    def __init__(self, stash: ConnectionStash, source: str):
        self._stash = stash
        self.script = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()

    def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return self._stash.call("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self._stash.call("SCRIPT", "LOAD", self.script)
            return self._stash.call("EVALSHA", self.sha, len(keys), *keys, *args)


class ScriptCall(Protocol):
    """A loaded script: ``LeanScript`` or redis-py's ``Script`` (both call and load alike)."""

    script: Any  # its source: str for ``LeanScript``, as given for redis-py's
    sha: str

    def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any: ...


def script_callers(
    client: Client, sources: dict[str, str]
) -> tuple[dict[str, ScriptCall], ConnectionStash | None]:
    """A caller per script name: lean on one server, redis-py's ``Script`` on a cluster;
    with the stash of the lean ones (None on a cluster), to disconnect it."""
    if not isinstance(client, redis_py.Redis):
        return {name: client.register_script(source) for name, source in sources.items()}, None
    stash = ConnectionStash(client)
    return {name: LeanScript(stash, source) for name, source in sources.items()}, stash
