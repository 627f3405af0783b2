"""RedisBroker specifics, against a real redis-server: connection URLs, key layout, scripts
that may run twice, bad payloads written straight into Redis, and pub/sub wake-ups.

The behaviour shared with every broker is in tests/conformance.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from spinach import Engine
from spinach.brokers.base import WorkerInfo
from spinach.brokers.redis import (
    SCRIPT_KEYS,
    SHARED_SCRIPTS,
    HiddenRetries,
    LoggedRetry,
    RedisBroker,
    header_keys,
    script_source,
)
from spinach.brokers.redis_layout import partition_tags
from spinach.job import Job, JobStatus
from spinach.priority import band
from spinach.task import Task
from spinach.testing import FakeClock
from tests.helpers import Subscriber, wait_until
from tests.support.broker_usage import job, use_everything
from tests.support.redis_fixtures import broker_factory, require_redis_server
from tests.support.redis_server import RedisServer

START = 1_700_000_000.0
PASSWORD = "s3cret/with:odd@chars"
WAIT = 30.0  #: generous bound for what another thread does; a passing test never waits it


def _noop() -> None:
    """The function of the tasks of these tests: brokers never call it."""


def ids(jobs: list[Job]) -> list[str]:
    return [job.id for job in jobs]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=START)


@pytest.fixture
def make(redis_broker_factory, clock) -> Callable[..., RedisBroker]:
    """A broker of namespace ``ns`` (or another) on the test's server, on the fake clock."""

    def make_broker(namespace: str = "ns", **kwargs: Any) -> RedisBroker:
        return redis_broker_factory(clock=clock, namespace=namespace, **kwargs)

    return make_broker


@pytest.fixture
def broker(make) -> RedisBroker:
    return make()


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client of db 0 of the test's server, for looking under the hood."""
    with redis_server.client() as client:
        yield client


def snapshot(client: redis.Redis) -> dict[bytes, Any]:
    """Every key of the db with its type and value, to compare states."""
    readers = {
        b"string": client.get,
        b"list": lambda key: client.lrange(key, 0, -1),
        b"set": lambda key: sorted(client.smembers(key)),
        b"zset": lambda key: client.zrange(key, 0, -1, withscores=True),
        b"hash": client.hgetall,
    }
    return {
        key: (kind, readers[kind](key))
        for key in client.scan_iter(count=1000)
        for kind in [client.type(key)]
    }


class SentTwice:
    """Replaces one script of a broker: every call runs it twice, as redis-py does when a
    reply is lost, and records the replies and the state after each run."""

    def __init__(self, broker: RedisBroker, name: str, client: redis.Redis):
        self.script = broker._scripts[name]
        self.client = client
        self.runs: list[tuple[Any, dict]] = []
        broker._scripts[name] = self  # type: ignore[assignment]

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        first = self.script(keys=keys, args=args)
        self.runs.append((first, snapshot(self.client)))
        second = self.script(keys=keys, args=args)
        self.runs.append((second, snapshot(self.client)))
        return second

    def assert_same_state(self) -> None:
        assert self.runs, "the script was not called"
        for (_, first), (_, second) in zip(self.runs[::2], self.runs[1::2], strict=True):
            assert first == second

    def assert_same_replies(self) -> None:
        for (first, _), (second, _) in zip(self.runs[::2], self.runs[1::2], strict=True):
            assert first == second


# -- connection URLs -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded_server() -> Iterator[RedisServer]:
    """A server with a password and a unix socket, for the URL tests."""
    executable = require_redis_server()
    with RedisServer(executable=executable, password=PASSWORD, unix_socket=True) as server:
        yield server


def url_broker(url: str | redis.Redis, **kwargs: Any) -> RedisBroker:
    broker = RedisBroker(url, clock=FakeClock(start=START), command_retries=0, **kwargs)
    broker.set_namespace("urls")
    return broker


def test_url_with_password_and_db(guarded_server: RedisServer) -> None:
    quoted = PASSWORD.replace("/", "%2F").replace(":", "%3A").replace("@", "%40")
    broker = url_broker(f"redis://:{quoted}@127.0.0.1:{guarded_server.port}/3")
    try:
        broker.flush()
        broker.enqueue_jobs([job()])
        with guarded_server.client(db=3) as db3, guarded_server.client(db=0) as db0:
            assert db3.llen(broker.queue_key("q")) == 1
            assert db0.llen(broker.queue_key("q")) == 0
    finally:
        broker.stop()


def test_wrong_password_is_an_error(guarded_server: RedisServer) -> None:
    broker = url_broker(f"redis://:wrong@127.0.0.1:{guarded_server.port}/0")
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            broker.is_queue_empty("q")
        with pytest.raises(redis.exceptions.AuthenticationError):  # a script call, too
            broker.enqueue_jobs([job()])
    finally:
        broker.stop()


def test_unix_socket_url(guarded_server: RedisServer) -> None:
    quoted = PASSWORD.replace("/", "%2F").replace(":", "%3A").replace("@", "%40")
    broker = url_broker(f"unix://{guarded_server.unix_socket_path}?db=5&password={quoted}")
    try:
        broker.flush()
        broker.enqueue_jobs([queued := job()])
        assert ids(broker.get_jobs_from_queue("q", 10)) == [queued.id]
        assert broker.channel.endswith("/5")
    finally:
        broker.stop()


def test_a_client_decoding_replies_is_given_a_binary_twin(redis_server: RedisServer) -> None:
    with redis_server.client(decode_responses=True) as client:
        broker = url_broker(client)
        try:
            broker.flush()
            broker.push_raw("q", b"\xff\xfe not utf-8")
            assert broker.get_jobs_from_queue("q", 10) == []
            [letter] = broker.list_dead_letters()
            assert letter.payload.endswith(" not utf-8")
        finally:
            broker.stop()


def test_default_url_is_local_db_zero() -> None:
    broker = RedisBroker()
    try:
        kwargs = broker.redis.get_connection_kwargs()
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("localhost", 6379, 0)
    finally:
        broker.stop()  # never connected: nothing touched port 6379


def test_namespace_with_braces_is_refused(broker: RedisBroker) -> None:
    for bad in ["", "a{b", "a}b"]:
        with pytest.raises(ValueError):
            broker.set_namespace(bad)


@pytest.mark.parametrize("bad", ["a~0", "a~0~1", "a~12", "~3", "billing~0001"])
def test_namespace_ending_like_a_partition_tag_is_refused(make, bad: str) -> None:
    refused = rf"namespace '{bad}' ends with '~' and digits.*another namespace's partition"
    for partitions in (1, 3):
        with pytest.raises(ValueError, match=refused):
            make(bad, partitions=partitions)
        engine = Engine(make(partitions=partitions), namespace="fine")
        with pytest.raises(ValueError, match=refused):
            engine.namespace = bad
        assert engine.namespace == engine.broker.namespace == "fine"


@pytest.mark.parametrize("good", ["a~", "a~b", "a~0b", "~", "a~0~", "a-0", "a0"])
def test_namespace_with_other_tildes_is_accepted(make, good: str) -> None:
    broker = make(good, partitions=3)

    assert broker.namespace == good
    tags = partition_tags(good, 3)
    assert [part.prefix for part in broker.partitions] == [f"{{{tag}}}/" for tag in tags]


# -- key layout and scripts ----------------------------------------------------------------


def test_every_key_of_a_namespace_is_in_one_slot(make, clock, admin) -> None:
    broker, peer, other = make(), make(), make("other")
    use_everything(broker, peer, clock)
    use_everything(other, make("other"), clock)

    keys = [key.decode() for key in admin.scan_iter(count=1000)]
    mine = [key for key in keys if key.startswith("{ns}/")]
    theirs = [key for key in keys if key.startswith("{other}/")]
    assert len(mine) + len(theirs) == len(keys)
    assert len(mine) >= 15
    assert {key_slot(key.encode()) for key in mine} == {key_slot(b"ns")}
    assert {key_slot(key.encode()) for key in theirs} == {key_slot(b"other")}

    broker.flush()
    assert {key.decode() for key in admin.scan_iter(count=1000)} == set(theirs)


def test_flush_leaves_no_key_behind(make, clock, admin) -> None:
    broker, peer = make(), make()
    use_everything(broker, peer, clock)

    broker.flush()

    assert list(admin.scan_iter()) == []


@pytest.mark.parametrize("name", sorted(SCRIPT_KEYS))
def test_script_headers_name_the_keys_given(name: str) -> None:
    declared = header_keys(name)
    given = {i + 1: key for i, key in enumerate(SCRIPT_KEYS[name])}
    if name == "flush":  # names the keys its code uses; it is given every fixed key
        assert all(given[i] == key for i, key in declared.items())
        return
    assert declared == given
    source = script_source(name)
    for index, key in given.items():
        assert re.search(rf"\b{key} = KEYS\[{index}\]", source), f"{key} is not KEYS[{index}]"


@pytest.mark.parametrize("name", sorted({*SCRIPT_KEYS, *SHARED_SCRIPTS}))
def test_scripts_get_the_helpers_they_call_and_no_other(name: str) -> None:
    """Each helper of _common.lua is a closure built at every call: a script's source
    defines those its code calls, directly or through another helper, before their use."""
    common = importlib.resources.files("spinach.brokers") / "redis_scripts" / "_common.lua"
    helpers = set(re.findall(r"^local function (\w+)", common.read_text(), re.MULTILINE))
    source = script_source(name)
    code = "\n".join(line.split("--", 1)[0] for line in source.splitlines())
    defined = re.findall(r"^local function (\w+)", code, re.MULTILINE)
    for helper in set(defined) & helpers:  # each one prepended is called after its definition
        definition = code.index(f"local function {helper}(")
        assert re.search(rf"\b{helper}\(", code[definition + len(helper) + 16 :]), helper
    for called in set(re.findall(r"\b(\w+)\(", code)) & helpers:
        assert called in defined, f"{name} calls {called} without its definition"


def test_flush_is_given_every_fixed_key() -> None:
    every = {key for keys in SCRIPT_KEYS.values() for key in keys}
    assert set(SCRIPT_KEYS["flush"]) == every


@pytest.mark.parametrize("name", sorted(SCRIPT_KEYS))
def test_no_script_lists_keys(name: str) -> None:
    source = script_source(name)
    assert not re.search(r"""['"](KEYS|SCAN|TIME)['"]""", source, re.IGNORECASE)


def test_scripts_load_again_after_a_script_flush(broker, admin) -> None:
    broker.start()
    admin.script_flush()

    broker.enqueue_jobs([queued := job()])

    assert ids(broker.get_jobs_from_queue("q", 10)) == [queued.id]


# -- every script run twice leaves one state ---------------------------------------------


def test_enqueue_sent_twice(broker, admin) -> None:
    twice = SentTwice(broker, "enqueue", admin)
    jobs = [job(), job(delay=10), job(queue="other")]

    broker.enqueue_jobs(jobs)

    twice.assert_same_state()
    twice.assert_same_replies()
    assert broker.queue_lengths() == {"q": 1, "other": 1}
    assert ids(broker.scheduled_jobs()) == [jobs[1].id]


def test_retry_sent_twice(broker, clock, admin) -> None:
    broker.enqueue_jobs([job(max_retries=2)])
    [fetched] = broker.get_jobs_from_queue("q", 10)
    fetched.retries += 1
    twice = SentTwice(broker, "enqueue", admin)

    broker.enqueue_jobs([fetched], from_failure=True)

    twice.assert_same_state()
    assert broker.running_jobs() == {}
    assert [j.retries for j in broker.get_jobs_from_queue("q", 10)] == [1]


def test_fetch_sent_twice_returns_the_same_jobs(broker, admin) -> None:
    broker.set_concurrency_keys([Task(_noop, "limited", "q", 0, max_concurrency=1)])
    jobs = [job("limited"), job(), job("limited"), job()]
    broker.enqueue_jobs(jobs)
    broker.push_raw("q", "{not json")
    twice = SentTwice(broker, "fetch", admin)

    fetched = broker.get_jobs_from_queue("q", 10)

    twice.assert_same_state()
    twice.assert_same_replies()
    assert ids(fetched) == ids([jobs[0], jobs[1], jobs[3]])
    assert len(broker.running_jobs()[broker.worker_id]) == 3
    assert broker.queue_lengths() == {"q": 1}
    assert len(broker.list_dead_letters()) == 1


def test_a_fetch_whose_reply_is_lost_is_delivered_by_the_next_call(broker) -> None:
    jobs = [job(), job()]
    broker.enqueue_jobs(jobs)
    script = broker._scripts["fetch"]

    def lose_the_reply(keys: list[str], args: list[Any]) -> Any:
        script(keys=keys, args=args)
        raise redis.exceptions.ConnectionError("reply lost")

    broker._scripts["fetch"] = lose_the_reply  # type: ignore[assignment]
    with pytest.raises(redis.exceptions.ConnectionError):
        broker.get_jobs_from_queue("q", 1)
    broker._scripts["fetch"] = script

    assert ids(broker.get_jobs_from_queue("q", 1)) == [jobs[0].id]
    assert ids(broker.get_jobs_from_queue("q", 1)) == [jobs[1].id]
    assert sorted(ids(broker.running_jobs()[broker.worker_id])) == sorted(ids(jobs))


def test_fetch_caches_are_acknowledged_and_deleted(broker, admin) -> None:
    broker.enqueue_jobs([job(), job(), job()])
    cache = f"{broker.prefix}fetched/{broker.worker_id}"

    broker.get_jobs_from_queue("q", 1)
    assert admin.hlen(cache) == 1
    broker.get_jobs_from_queue("q", 1)
    assert admin.hlen(cache) == 1  # the first reply was acknowledged
    broker.get_jobs_from_queue("q", 10)
    broker.get_jobs_from_queue("q", 10)  # an empty reply is not cached
    assert admin.hlen(cache) == 0

    broker.register_worker(WorkerInfo(id=broker.worker_id))
    broker.enqueue_jobs([job()])
    broker.get_jobs_from_queue("q", 1)
    broker.deregister_worker()
    assert not admin.exists(cache)


@pytest.mark.parametrize("name", ["finish", "return_jobs", "dead_letter"])
def test_ending_a_job_sent_twice(broker, admin, name: str) -> None:
    broker.set_concurrency_keys([Task(_noop, "limited", "q", 0, max_concurrency=1)])
    broker.enqueue_jobs([job("limited"), job("limited")])
    [fetched] = broker.get_jobs_from_queue("q", 10)
    twice = SentTwice(broker, name, admin)

    if name == "finish":
        broker.remove_job_from_running(fetched)
    elif name == "return_jobs":
        broker.return_jobs([fetched])
    else:
        broker.dead_letter(fetched, "unknown task")

    twice.assert_same_state()
    assert broker.running_jobs() == {}
    assert len(broker.get_jobs_from_queue("q", 10)) == 1  # one slot freed, once


def test_move_future_jobs_sent_twice(broker, clock, admin) -> None:
    broker.register_periodic_tasks([Task(_noop, "tick", "q", 0, timedelta(seconds=60))])
    broker.enqueue_jobs([job(delay=5), job(delay=5)])
    clock.advance(5)
    twice = SentTwice(broker, "move_future_jobs", admin)

    broker.move_future_jobs()

    twice.assert_same_state()
    assert [r for r, _ in twice.runs] == [3, 0]
    assert len(broker.get_jobs_from_queue("q", 10)) == 3


def test_recovery_sent_twice(make, clock, admin) -> None:
    broker, dead = make(), make()
    for each in (broker, dead):
        each.register_worker(WorkerInfo(id=each.worker_id))
    broker.enqueue_jobs([job(max_retries=1), job(max_retries=0)])
    dead.get_jobs_from_queue("q", 10)
    clock.advance(100)
    broker.heartbeat()
    expire = SentTwice(broker, "expire_dead_workers", admin)
    recover = SentTwice(broker, "recover_jobs", admin)

    recovered = broker.recover_dead_workers(30)

    expire.assert_same_state()
    expire.assert_same_replies()
    recover.assert_same_state()
    recover.assert_same_replies()
    assert sorted(j.status.name for j in recovered) == ["FAILED", "QUEUED"]
    assert broker.queue_lengths() == {"q": 1}


@pytest.mark.parametrize("name", ["retry_dead_letters", "purge_dead_letters"])
def test_dead_letter_maintenance_sent_twice(broker, admin, name: str) -> None:
    broker.push_raw("q", "{not json")
    broker.push_raw("q", "[]")
    broker.get_jobs_from_queue("q", 10)
    twice = SentTwice(broker, name, admin)

    assert getattr(broker, name)() == 2

    twice.assert_same_state()
    twice.assert_same_replies()
    assert broker.list_dead_letters() == []


def test_push_raw_sent_twice(broker, admin) -> None:
    twice = SentTwice(broker, "push_raw", admin)

    broker.push_raw("q", "{not json")

    twice.assert_same_state()
    assert broker.queue_lengths() == {"q": 1}


def resend_after(broker: RedisBroker, name: str, meanwhile: Callable[[], None]) -> None:
    """Make the next call of script ``name`` run, then ``meanwhile``, then run again: a
    reply lost and the command sent again after other workers acted."""
    script = broker._scripts[name]

    def run_twice(keys: list[str], args: list[Any]) -> Any:
        script(keys=keys, args=args)
        meanwhile()
        return script(keys=keys, args=args)

    broker._scripts[name] = run_twice  # type: ignore[assignment]


def test_an_enqueue_sent_again_after_its_job_ran_stores_nothing(make) -> None:
    client, worker = make(), make()
    queued = job()

    def run_it() -> None:
        [fetched] = worker.get_jobs_from_queue("q", 10)
        worker.remove_job_from_running(fetched)

    resend_after(client, "enqueue", run_it)
    client.enqueue_jobs([queued])

    assert queued.status is JobStatus.QUEUED
    assert client.queue_lengths() == {}
    assert worker.get_jobs_from_queue("q", 10) == []


def test_a_retry_sent_again_after_it_ran_stores_nothing(make) -> None:
    broker, other = make(), make()
    broker.enqueue_jobs([job(max_retries=3)])
    [failed] = broker.get_jobs_from_queue("q", 10)
    failed.retries += 1

    def run_it() -> None:
        [again] = other.get_jobs_from_queue("q", 10)
        other.remove_job_from_running(again)

    resend_after(broker, "enqueue", run_it)
    broker.enqueue_jobs([failed], from_failure=True)

    assert broker.queue_lengths() == {}
    assert broker.running_jobs() == {}


def test_returned_jobs_sent_again_after_they_ran_are_not_returned_twice(make) -> None:
    broker, other = make(), make()
    broker.enqueue_jobs([job()])
    fetched = broker.get_jobs_from_queue("q", 10)

    def run_it() -> None:
        [again] = other.get_jobs_from_queue("q", 10)
        other.remove_job_from_running(again)

    resend_after(broker, "return_jobs", run_it)
    broker.return_jobs(fetched)

    assert broker.queue_lengths() == {}


def test_the_caller_retrying_a_call_whose_reply_was_lost_runs_it_once(make) -> None:
    client, worker = make(), make()
    queued = job()
    script = client._scripts["enqueue"]

    def lose_the_reply(keys: list[str], args: list[Any]) -> Any:
        script(keys=keys, args=args)
        [fetched] = worker.get_jobs_from_queue("q", 10)  # the job runs meanwhile
        worker.remove_job_from_running(fetched)
        raise redis.exceptions.ConnectionError("reply lost, retries spent")

    client._scripts["enqueue"] = lose_the_reply  # type: ignore[assignment]
    with pytest.raises(redis.exceptions.ConnectionError):
        client.enqueue_jobs([queued])
    client._scripts["enqueue"] = script

    client.enqueue_jobs([queued])  # the caller's retry loop sends the same call again

    assert client.queue_lengths() == {}
    client.enqueue_jobs([queued])  # a new call after a success is a new call
    assert client.queue_lengths() == {"q": 1}


def test_replies_kept_for_resent_calls_expire(make, clock, admin) -> None:
    broker = make(resend_window=60)
    broker.enqueue_jobs([job()])
    broker.push_raw("q", "{not json")
    assert admin.hlen(broker.key("replies")) == 2

    clock.advance(61)
    broker.enqueue_jobs([job()])

    assert admin.hlen(broker.key("replies")) == 1


@pytest.mark.parametrize(
    "name", ["register_worker", "heartbeat", "register_periodic_tasks", "set_concurrency_keys"]
)
def test_bookkeeping_sent_twice(broker, admin, name: str) -> None:
    task = Task(_noop, "tick", "q", 0, timedelta(seconds=60), max_concurrency=2)
    broker.register_worker(WorkerInfo(id=broker.worker_id))
    twice = SentTwice(broker, name, admin)

    if name == "register_worker":
        broker.register_worker(WorkerInfo(id=broker.worker_id))
    elif name == "heartbeat":
        broker.heartbeat()
    elif name == "register_periodic_tasks":
        broker.register_periodic_tasks([task])
    else:
        broker.set_concurrency_keys([task])

    twice.assert_same_state()
    twice.assert_same_replies()


# -- payloads written straight into Redis --------------------------------------------------


def test_poison_payloads_pushed_into_a_queue_are_dead_lettered(broker, admin) -> None:
    good = [job(), job(), job()]
    broker.enqueue_jobs(good[:1])
    valid = json.loads(good[0].serialize())
    poison = [
        b"\x00\xff garbage",
        json.dumps({**valid, "id": "wrong-retries", "retries": 1.5}),  # cjson catches it
        json.dumps({**valid, "id": "retries-as-float", "retries": 1.0}),  # Python does
        json.dumps({**valid, "id": "args-as-object", "task_args": {}}),  # so does this one
    ]
    for payload in poison:
        admin.lpush(broker.queue_key("q"), payload)  # at the front, before the good job
    broker.enqueue_jobs(good[1:])

    assert ids(broker.get_jobs_from_queue("q", 10)) == ids(good)

    letters = {letter.id: letter for letter in broker.list_dead_letters()}
    assert len(letters) == 4
    assert {"wrong-retries", "retries-as-float", "args-as-object"} < letters.keys()
    for letter in letters.values():
        with pytest.raises(ValueError) as raised:
            Job.deserialize(admin.hget(broker.key("dead"), letter.id))
        assert letter.reason == str(raised.value)
    assert sorted(ids(broker.running_jobs()[broker.worker_id])) == sorted(ids(good))
    assert broker.queue_lengths() == {}


def test_retried_dead_letter_keeps_its_exact_bytes(broker, admin) -> None:
    payload = b"\xff\xfe not utf-8"
    broker.push_raw("q", payload)
    broker.get_jobs_from_queue("q", 10)

    assert broker.retry_dead_letters() == 1

    assert admin.lrange(broker.queue_key("q"), 0, -1) == [payload]


def test_a_duplicate_of_a_running_job_is_dead_lettered(broker) -> None:
    queued = job()
    broker.push_raw("q", queued.serialize())
    broker.push_raw("q", queued.serialize())

    assert ids(broker.get_jobs_from_queue("q", 10)) == [queued.id]

    [letter] = broker.list_dead_letters()
    assert "already running" in letter.reason
    assert letter.id == queued.id


def test_jobs_at_their_limit_beyond_the_scan_limit_are_not_looked_at(make) -> None:
    broker = make(fetch_scan_limit=3)
    broker.set_concurrency_keys([Task(_noop, "limited", "q", 0, max_concurrency=1)])
    jobs = [job("limited") for _ in range(4)] + [job("free")]
    broker.enqueue_jobs(jobs)

    assert ids(broker.get_jobs_from_queue("q", 10)) == [jobs[0].id]
    assert broker.get_jobs_from_queue("q", 10) == []  # "free" is 5th, past the 3 looked at
    broker.remove_job_from_running(jobs[0])
    assert ids(broker.get_jobs_from_queue("q", 10)) == [jobs[1].id]


def test_a_server_without_smismember_still_has_the_bands_fetched() -> None:
    # SMISMEMBER came with Redis 6.2: renamed away, the fetch checks one band at a time.
    executable = require_redis_server()
    old = ["--rename-command", "SMISMEMBER", ""]
    with (
        RedisServer(executable=executable, extra_args=old) as server,
        broker_factory(server.url) as make_broker,
    ):
        broker = make_broker()
        urgent, plain, low = job(queue=band("q", 1)), job(), job(queue=band("q", 9))
        broker.enqueue_jobs([low, plain, urgent])
        taken = broker.get_jobs_from_queue("q", 10)
    assert [j.id for j in taken] == [plain.id, urgent.id, low.id]


def test_max_fetch_size_caps_a_fetch(make) -> None:
    broker = make(max_fetch_size=2)
    broker.enqueue_jobs([job() for _ in range(5)])

    assert len(broker.get_jobs_from_queue("q", 100)) == 2


def test_move_batch_size_caps_a_move(make, clock) -> None:
    broker = make(move_batch_size=2)
    broker.enqueue_jobs([job(delay=1) for _ in range(5)])
    clock.advance(1)

    assert [broker.move_future_jobs() for _ in range(4)] == [2, 2, 1, 0]


def test_a_periodic_job_fired_twice_has_distinct_ids(broker, clock) -> None:
    broker.register_periodic_tasks([Task(_noop, "tick", "q", 0, timedelta(seconds=60))])
    broker.move_future_jobs()
    clock.advance(60)
    broker.move_future_jobs()

    fired = broker.get_jobs_from_queue("q", 10)
    assert len(set(ids(fired))) == 2


# -- notifications ---------------------------------------------------------------------


def subscribers(client: redis.Redis, channel: str) -> int:
    return dict(client.pubsub_numsub(channel)).get(channel.encode(), 0)


def test_an_enqueue_wakes_the_arbiter_of_another_broker(make, admin) -> None:
    sender, receiver = make(), make()
    woken = threading.Event()
    with Subscriber(receiver):
        assert wait_until(lambda: subscribers(admin, receiver.channel) == 1)
        waiter = threading.Thread(target=lambda: (receiver.wait_for_event(WAIT), woken.set()))
        receiver.wait_for_event(0)  # forget a wake-up from before
        waiter.start()
        sender.enqueue_jobs([job()])
        assert wait_until(lambda: receiver.notifications_received >= 1)
        waiter.join(WAIT)
    assert woken.is_set()


def test_the_subscriber_stops_promptly(make) -> None:
    broker = make(subscriber_poll_interval=0.05)
    with Subscriber(broker) as subscriber:
        pass
    assert not subscriber.thread.is_alive()


def test_namespaces_and_dbs_notify_on_their_own_channels(make, redis_server, admin) -> None:
    first, second = make("one"), make("two")
    other_db = RedisBroker(redis_server.url_for(1), clock=FakeClock(start=START))
    other_db.set_namespace("one")
    assert len({first.channel, second.channel, other_db.channel}) == 3
    try:
        with admin.pubsub() as pubsub:
            pubsub.psubscribe("*")
            assert wait_until(lambda: admin.pubsub_numpat() == 1)
            for broker in (first, second, other_db):
                broker.enqueue_jobs([job()])
            messages = [pubsub.get_message(timeout=WAIT) for _ in range(4)]
        channels = [m["channel"].decode() for m in messages if m and m["type"] == "pmessage"]
        assert channels == [first.channel, second.channel, other_db.channel]
        assert first.queue_lengths() == {"q": 1}
        assert other_db.queue_lengths() == {"q": 1}
        first.flush()
        assert other_db.queue_lengths() == {"q": 1}
    finally:
        other_db.stop()


def test_a_subscriber_ignores_other_namespaces(make, admin) -> None:
    listening, other = make("one"), make("two")
    with Subscriber(listening):
        assert wait_until(lambda: subscribers(admin, listening.channel) == 1)
        other.enqueue_jobs([job()])  # published before the marker, on another channel
        make("one").enqueue_jobs([job()])  # the marker
        assert wait_until(lambda: listening.notifications_received >= 1)
        own = {listening.channel.encode(), listening.handover_channel.encode()}
        assert set(admin.pubsub_channels()) == own  # the namespace's, and its hand-overs
    assert listening.notifications_received == 1


# -- retries redis-py makes inside a call ----------------------------------------------------


def hidden_retry_lines(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    """The warnings of redis-py's hidden retries: (connection lost, reconnected)."""
    messages = [r.getMessage() for r in caplog.records if r.name == "spinach.brokers.redis"]
    return (
        [m for m in messages if m.startswith("Lost the connection to Redis")],
        [m for m in messages if m.startswith("Reconnected to Redis")],
    )


def test_a_killed_connection_retried_by_redis_py_is_logged_once(
    make, redis_server, admin, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="spinach.brokers.redis")
    broker = make()
    reply: list[Any] = []
    waiting = threading.Thread(
        target=lambda: reply.append(broker.redis.blpop([broker.key("wake")], timeout=5))
    )
    waiting.start()  # a command in flight when its connection is killed
    assert wait_until(lambda: admin.info("clients")["blocked_clients"] == 1)
    assert admin.client_kill_filter(_type="normal") >= 1  # the blocked command's, at least
    assert wait_until(lambda: admin.info("clients")["blocked_clients"] == 1)  # sent again
    admin.rpush(broker.key("wake"), "1")
    waiting.join(WAIT)

    assert reply == [(broker.key("wake").encode(), b"1")]
    lost, back = hidden_retry_lines(caplog)
    assert lost == [
        f"Lost the connection to Redis at 127.0.0.1:{redis_server.port} "
        "(ConnectionError: Connection closed by server.); retrying"
    ]
    assert len(back) == 1 and back[0].startswith(
        f"Reconnected to Redis at 127.0.0.1:{redis_server.port} after 1 retried attempt(s) in "
    )


@pytest.fixture
def restartable() -> Iterator[RedisServer]:
    """A server of this test alone, append-only so a restart keeps its data."""
    with RedisServer(executable=require_redis_server(), appendonly=True) as server:
        yield server


def test_a_short_outage_hidden_by_redis_py_retries_is_logged_once(restartable, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="spinach.brokers.redis")
    broker = RedisBroker(
        restartable.url, command_retries=1000, reconnect_base_delay=0.01, reconnect_max_delay=0.05
    )
    broker.set_namespace("ns")
    lengths: list[dict[str, int]] = []
    try:
        broker.enqueue_jobs([job()])
        restartable.stop()
        threads = [threading.Thread(target=lambda: lengths.append(broker.queue_lengths()))]
        threads.append(threading.Thread(target=lambda: lengths.append(broker.queue_lengths())))
        for thread in threads:
            thread.start()
        assert wait_until(lambda: broker.hidden_retries.retries >= 4)  # both threads retry
        restartable.restart()
        for thread in threads:
            thread.join(WAIT)
    finally:
        broker.stop()

    assert lengths == [{"q": 1}, {"q": 1}]  # the callers saw no error
    lost, back = hidden_retry_lines(caplog)
    assert len(lost) == 1 and "ConnectionError" in lost[0]
    assert len(back) == 1 and not broker.hidden_retries.ongoing


def test_a_failure_without_retries_left_is_left_to_the_caller(restartable, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="spinach.brokers.redis")
    broker = RedisBroker(restartable.url, command_retries=0)
    broker.set_namespace("ns")
    try:
        broker.enqueue_jobs([job()])
        restartable.stop()
        with pytest.raises(redis.exceptions.ConnectionError):
            broker.queue_lengths()
        restartable.restart()
        assert broker.queue_lengths() == {"q": 1}
    finally:
        broker.stop()

    assert hidden_retry_lines(caplog) == ([], [])  # the engine's loops log this outage


def test_a_client_passed_in_gets_an_equal_retry_that_logs(redis_server) -> None:
    backoff = ExponentialWithJitterBackoff(base=0.01, cap=0.1)
    with redis_server.client(retry=Retry(backoff, 7)) as client:
        before = client.get_retry()
        broker = url_broker(client)
        retry = client.get_retry()
        assert isinstance(retry, LoggedRetry) and retry.hidden is broker.hidden_retries
        assert retry == before and retry.get_retries() == 7
        assert broker.is_queue_empty("q")
        connection = client.connection_pool.get_connection()
        try:
            assert connection.retry.hidden is broker.hidden_retries  # and its connections
        finally:
            client.connection_pool.release(connection)


def test_a_retry_subclass_passed_in_is_left_alone(redis_server) -> None:
    class MyRetry(Retry):
        pass

    with redis_server.client(retry=MyRetry(NoBackoff(), 2)) as client:
        url_broker(client)
        assert type(client.get_retry()) is MyRetry


def test_hidden_retries_log_once_per_outage_across_threads(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="spinach.brokers.redis")
    now = [0.0]
    hidden = HiddenRetries("db:6379", clock=lambda: now[0])
    failing = [
        threading.Thread(target=hidden.failed, args=(ConnectionError("gone"),)) for _ in range(8)
    ]
    for thread in failing:
        thread.start()
    for thread in failing:
        thread.join(WAIT)
    now[0] = 2.5
    succeeding = [threading.Thread(target=hidden.succeeded) for _ in range(8)]
    for thread in succeeding:
        thread.start()
    for thread in succeeding:
        thread.join(WAIT)

    assert hidden_retry_lines(caplog) == (
        ["Lost the connection to Redis at db:6379 (ConnectionError: gone); retrying"],
        ["Reconnected to Redis at db:6379 after 8 retried attempt(s) in 2.5 s"],
    )
    hidden.failed(ConnectionError("again"))  # a new outage is logged again
    assert len(hidden_retry_lines(caplog)[0]) == 2


# -- call ids ------------------------------------------------------------------------------


def test_call_ids_are_unique_across_brokers(make) -> None:
    first, second = make(), make()

    ids = {first._unique_id() for _ in range(3)} | {second._unique_id() for _ in range(3)}

    assert len(ids) == 6


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_makes_call_ids_of_its_own(broker) -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then out without running pytest's exit code
        os.write(write_end, broker._unique_id().encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        in_child = pipe.read()

    assert in_child and in_child != broker._unique_id()
    assert in_child.split("-")[0] != broker._unique_id().split("-")[0]
