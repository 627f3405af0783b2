"""The lean script calls of the Redis broker (``spinach.brokers.redis_calls``), against the
session's redis-server: what they send, which connections they keep, and what an
interrupted call leaves behind."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import hiredis
import pytest
import redis
import redis.backoff
import redis.cluster
import redis.retry

from spinach.brokers.redis_calls import ConnectionStash, LeanScript, script_callers

ECHO = "return {KEYS[1], ARGV[1], ARGV[2]}"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def stash(client: redis.Redis) -> Iterator[ConnectionStash]:
    stash = ConnectionStash(client)
    yield stash
    stash.disconnect()


def connections_named(client: redis.Redis, name: str) -> int:
    return sum(1 for entry in client.client_list() if entry["name"] == name)


def test_floats_are_sent_as_repr_writes_them() -> None:
    assert hiredis.pack_command((0.1 + 0.2,)) == b"*1\r\n$19\r\n0.30000000000000004\r\n"


def test_a_script_gets_its_keys_and_arguments(stash: ConnectionStash) -> None:
    script = LeanScript(stash, ECHO)

    assert script(keys=["k"], args=[1.5, "é"]) == [b"k", b"1.5", "é".encode()]


def test_a_flushed_script_is_loaded_again(stash: ConnectionStash, client: redis.Redis) -> None:
    script = LeanScript(stash, ECHO)
    script(keys=["k"], args=[1, 2])
    client.script_flush()

    assert script(keys=["k"], args=[1, 2]) == [b"k", b"1", b"2"]


def test_an_error_reply_keeps_the_connection(stash: ConnectionStash, client: redis.Redis) -> None:
    stash.call("CLIENT", "SETNAME", "lean-error")
    failing = LeanScript(stash, "return redis.error_reply('nope')")

    with pytest.raises(redis.ResponseError, match="nope"):
        failing(keys=[], args=[])

    assert connections_named(client, "lean-error") == 1
    assert stash.call("PING") == b"PONG"


def test_an_interrupted_call_closes_its_connection(
    stash: ConnectionStash, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    stash.call("CLIENT", "SETNAME", "lean-interrupted")
    [connection] = stash._idle

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as a time limit's asynchronous exception would

    monkeypatch.setattr(connection, "read_response", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stash.call("PING")
    monkeypatch.undo()

    assert connections_named(client, "lean-interrupted") == 0
    assert stash.call("PING") == b"PONG"  # on a new connection


def test_a_connection_the_server_closed_is_replaced(redis_url: str, client: redis.Redis) -> None:
    no_retries = redis.Redis.from_url(
        redis_url, retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0)
    )
    stash = ConnectionStash(no_retries)
    try:
        stash.call("CLIENT", "SETNAME", "lean-killed")
        client.client_kill_filter(_type="normal", skipme=True)

        assert stash.call("PING") == b"PONG"
    finally:
        stash.disconnect()
        no_retries.close()


def test_concurrent_calls_use_as_many_connections(
    stash: ConnectionStash, client: redis.Redis
) -> None:
    started = threading.Barrier(3)

    def call() -> None:
        started.wait()
        stash.call("BLPOP", "lean-nothing", 0.2)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(stash._idle) == 3
    assert stash.call("PING") == b"PONG"
    assert len(stash._idle) == 3


def test_a_cluster_client_keeps_redis_py_scripts() -> None:
    cluster = redis.cluster.RedisCluster.__new__(redis.cluster.RedisCluster)
    cluster.register_script = lambda source: ("redis-py", source)  # type: ignore[method-assign]

    callers, stash = script_callers(cluster, {"echo": ECHO})

    assert callers == {"echo": ("redis-py", ECHO)} and stash is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_without_the_parents_connections(stash: ConnectionStash) -> None:
    stash.call("PING")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what it has, then out without running pytest's exit code
        os.write(write_end, f"{len(stash._idle)} {stash.call('PING').decode()}".encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        in_child = pipe.read()

    assert in_child == "0 PONG"
    assert len(stash._idle) == 1 and stash.call("PING") == b"PONG"
