"""The shared state of brokers: claims, counters, values, expiring sets and hashes.

Expiry is checked without sleeping: in memory by moving the fake clock past the TTL; on
Redis, where TTLs are Redis's own, by reading the TTL back. Expiring set members carry a
time of the broker's clock on both.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from spinach.brokers.base import Broker, Unscoped
from spinach.brokers.memory import MemoryBroker
from spinach.brokers.redis import SHARED_SCRIPTS, header_keys, script_source
from spinach.testing import FakeClock

from .conftest import NAMESPACE

WAIT = 5.0  #: seconds a test waits for what must come; never reached when all is well


def assert_expires(
    broker: Broker, clock: FakeClock, name: str, ttl: float, present: Callable[[], bool]
) -> None:
    """Check that entry ``name`` is present and expires ``ttl`` seconds from now."""
    assert present()
    if isinstance(broker, MemoryBroker):
        clock.advance(ttl - 0.01)
        assert present()
        clock.advance(0.02)
        assert not present()
        return
    millis = broker.redis.pttl(broker.key(name))  # type: ignore[attr-defined]
    assert ttl * 1000 - 1000 < millis <= ttl * 1000


def test_keys_carry_the_namespace_as_hash_tag(broker: Broker) -> None:
    assert broker.key("compat/revoked") == f"{{{NAMESPACE}}}/compat/revoked"


# -- claims --------------------------------------------------------------------------------


def test_one_claimant_wins_until_the_claim_expires(broker, peer, clock) -> None:
    assert broker.claim("lock", ttl=30)
    assert not peer.claim("lock", ttl=30)
    assert not broker.claim("lock", ttl=30)  # not reentrant
    assert_expires(broker, clock, "lock", 30, lambda: broker.get_values(["lock"])[0] is not None)
    if isinstance(broker, MemoryBroker):  # expired: free again
        assert peer.claim("lock", ttl=30)


def test_a_deleted_claim_can_be_taken_again(broker, peer) -> None:
    assert broker.claim("lock", ttl=30)
    broker.delete(["lock"])
    assert peer.claim("lock", ttl=30)


def test_claims_of_two_namespaces_are_apart(broker, other_namespace) -> None:
    assert broker.claim("lock", ttl=30)
    assert other_namespace.claim("lock", ttl=30)


# -- counters ------------------------------------------------------------------------------


def test_a_counter_counts_across_processes_and_expires(broker, peer, clock) -> None:
    assert broker.increment("count", ttl=60) == 1
    assert peer.increment("count", ttl=60) == 2
    assert broker.increment("count", ttl=60, by=5) == 7
    assert peer.increment("count", ttl=60, by=-1) == 6
    assert broker.get_values(["count"]) == ["6"]
    assert_expires(broker, clock, "count", 60, lambda: peer.get_values(["count"]) == ["6"])


def test_each_increment_pushes_the_expiry_back(broker, clock) -> None:
    broker.increment("count", ttl=10)
    if isinstance(broker, MemoryBroker):
        clock.advance(8)
    broker.increment("count", ttl=10)
    assert_expires(broker, clock, "count", 10, lambda: broker.get_values(["count"]) == ["2"])


# -- values --------------------------------------------------------------------------------


def test_values_are_set_read_and_deleted_together(broker, peer, clock) -> None:
    broker.set_values({"a": "1", "b": '{"x": [1]}'}, ttl=120)

    assert peer.get_values(["b", "missing", "a"]) == ['{"x": [1]}', None, "1"]
    assert broker.get_values([]) == []
    assert_expires(broker, clock, "a", 120, lambda: broker.get_values(["a"]) == ["1"])


def test_setting_a_value_replaces_it_and_its_expiry(broker, clock) -> None:
    broker.set_values({"a": "1"}, ttl=5)
    broker.set_values({"a": "2"}, ttl=50)
    assert_expires(broker, clock, "a", 50, lambda: broker.get_values(["a"]) == ["2"])


def test_delete_removes_entries_of_every_kind(broker, peer) -> None:
    broker.set_values({"value": "1"}, ttl=60)
    broker.increment("count", ttl=60)
    broker.add_members("set", {"m": broker.now() + 60})
    broker.hash_set("hash", "f", "v")

    peer.delete(["value", "count", "set", "hash", "never-there"])
    peer.delete([])

    assert broker.get_values(["value", "count"]) == [None, None]
    assert broker.members("set") == {}
    assert broker.hash_get("hash", "f") is None


def test_values_of_two_namespaces_are_apart(broker, other_namespace) -> None:
    broker.set_values({"a": "mine"}, ttl=60)
    assert other_namespace.get_values(["a"]) == [None]


# -- expiring sets -------------------------------------------------------------------------


def test_members_are_in_the_set_until_their_time(broker, peer, clock, start) -> None:
    broker.add_members("revoked", {"a": start + 10, "b": start + 20})
    assert peer.members("revoked") == {"a": start + 10, "b": start + 20}

    clock.advance(10)  # "a" is in the set until start + 10, not at it
    assert peer.members("revoked") == {"b": start + 20}


def test_adding_a_member_again_sets_its_new_time(broker, clock, start) -> None:
    broker.add_members("revoked", {"a": start + 10})
    broker.add_members("revoked", {"a": start + 30, "b": start + 5})
    clock.advance(20)
    assert broker.members("revoked") == {"a": start + 30}


def test_adding_members_drops_the_expired_ones(broker, clock, start) -> None:
    broker.add_members("revoked", {"a": start + 10})
    clock.advance(15)
    broker.add_members("revoked", {"b": start + 30})
    assert broker.members("revoked") == {"b": start + 30}
    if not isinstance(broker, MemoryBroker):  # gone from Redis too, not only hidden
        assert broker.redis.zcard(broker.key("revoked")) == 1


def test_an_unknown_set_has_no_member(broker) -> None:
    assert broker.members("nothing") == {}


# -- hashes --------------------------------------------------------------------------------


def test_hash_fields_are_set_read_and_removed(broker, peer) -> None:
    broker.hash_set("registry", "w1", '["a", "b"]')
    broker.hash_set("registry", "w2", "[]")

    assert peer.hash_get("registry", "w1") == '["a", "b"]'
    assert peer.hash_get("registry", "nope") is None
    peer.hash_delete("registry", "w1")
    peer.hash_delete("registry", "nope")
    assert broker.hash_get("registry", "w1") is None
    assert broker.hash_get("registry", "w2") == "[]"


def test_a_hash_expires_as_a_whole_when_given_a_ttl(broker, clock) -> None:
    broker.hash_set("registry", "w1", "x")
    if not isinstance(broker, MemoryBroker):
        assert broker.redis.pttl(broker.key("registry")) == -1  # no expiry
    broker.hash_set("registry", "w2", "y", ttl=40)
    broker.hash_set("registry", "w3", "z")  # leaves the expiry as it is
    assert_expires(broker, clock, "registry", 40, lambda: broker.hash_get("registry", "w1") == "x")


# -- published values (results), also under names outside the namespace ---------------------


def _published(status: str, result: object = None) -> str:
    return json.dumps({"status": status, "result": result})


def test_a_published_value_is_stored_and_expires(broker, peer, clock) -> None:
    assert broker.publish_value("result/a", "plain text", ttl=30)
    assert peer.get_values(["result/a"]) == ["plain text"]
    assert peer.get_bytes(["result/a", "missing"]) == [b"plain text", None]
    assert_expires(broker, clock, "result/a", 30, lambda: peer.get_bytes(["result/a"])[0])


def test_a_value_published_without_ttl_never_expires(broker, clock) -> None:
    broker.publish_value("group", "g", ttl=None)
    if isinstance(broker, MemoryBroker):
        clock.advance(10**9)
    else:
        assert broker.redis.pttl(broker.key("group")) == -1
    assert broker.get_values(["group"]) == ["g"]


def test_a_value_with_the_kept_status_is_not_replaced(broker, peer) -> None:
    success = _published("SUCCESS", 1)
    assert broker.publish_value("r", _published("STARTED"), 60, keep_status="SUCCESS")
    assert broker.publish_value("r", success, 60, keep_status="SUCCESS")
    assert not peer.publish_value("r", _published("FAILURE"), 60, keep_status="SUCCESS")
    assert broker.publish_value("r", success, 60, keep_status="SUCCESS")  # sent again
    assert peer.get_values(["r"]) == [success]
    assert peer.publish_value("r", _published("FAILURE"), 60)  # nothing kept: replaced


def test_values_that_are_not_json_or_not_text_are_replaced(broker, peer) -> None:
    pickled = b"\x80\x04\x95\xff not json"
    assert broker.publish_value("r", pickled, 60, keep_status="SUCCESS")
    assert peer.get_bytes(["r"]) == [pickled]
    assert broker.publish_value("r", _published("SUCCESS"), 60, keep_status="SUCCESS")


def test_unscoped_names_are_stored_as_they_are(broker, other_namespace) -> None:
    name = Unscoped("celery-task-meta-x")
    assert broker.key(name) == "celery-task-meta-x"
    broker.publish_value(name, "theirs", ttl=60)
    broker.publish_value("mine", "ours", ttl=60)
    assert other_namespace.get_bytes([name, "mine"]) == [b"theirs", None]
    assert broker.get_bytes(["mine", name]) == [b"ours", b"theirs"]
    if not isinstance(broker, MemoryBroker):
        assert broker.redis.get("celery-task-meta-x") == b"theirs"
    other_namespace.delete([name])
    assert broker.get_values([name]) == [None]


def test_a_watch_gets_each_value_published_under_its_names(broker, peer) -> None:
    with broker.watch(["a", Unscoped("outside")], timeout=WAIT) as watch:
        peer.publish_value("b", "not watched", 60)
        peer.publish_value("a", "1", 60)
        peer.publish_value(Unscoped("outside"), b"\xff2", 60)
        assert watch.next(WAIT) == ("a", b"1")
        assert watch.next(WAIT) == ("outside", b"\xff2")
        assert watch.next(0.01) is None


def test_a_kept_value_is_not_published_again(broker, peer) -> None:
    broker.publish_value("r", _published("SUCCESS"), 60, keep_status="SUCCESS")
    with broker.watch(["r"], timeout=WAIT) as watch:
        peer.publish_value("r", _published("FAILURE"), 60, keep_status="SUCCESS")
        assert watch.next(0.01) is None


def test_a_watch_of_another_thread_gets_the_value(broker, peer) -> None:
    got: list = []
    watching = threading.Event()

    def wait() -> None:
        with broker.watch(["later"], timeout=WAIT) as watch:
            watching.set()
            got.append(watch.next(WAIT))

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert watching.wait(WAIT)
    peer.publish_value("later", "done", 60)
    waiter.join(WAIT)
    assert got == [("later", b"done")]


# -- Redis: calls sent twice ---------------------------------------------------------------


def _send_twice(broker: Any, name: str) -> None:
    """Make every call of script ``name`` run twice, as redis-py does on a lost reply."""
    script = broker._scripts[name]

    def twice(keys: list[str], args: list[Any]) -> Any:
        script(keys=keys, args=args)
        return script(keys=keys, args=args)

    broker._scripts[name] = twice


def test_a_claim_or_increment_sent_twice_acts_once(broker, peer) -> None:
    if isinstance(broker, MemoryBroker):
        pytest.skip("an in-process call cannot lose its reply")
    _send_twice(broker, "claim")
    _send_twice(broker, "increment")
    _send_twice(broker, "publish_value")

    assert broker.claim("lock", ttl=30)
    assert not peer.claim("lock", ttl=30)
    assert broker.increment("count", ttl=30) == 1
    assert broker.increment("count", ttl=30) == 2
    success = _published("SUCCESS")
    assert broker.publish_value("r", success, 30, keep_status="SUCCESS")
    assert not peer.publish_value("r", _published("FAILURE"), 30, keep_status="SUCCESS")


@pytest.mark.parametrize("name", SHARED_SCRIPTS)
def test_shared_state_scripts_name_their_keys_and_arguments(name: str) -> None:
    text = script_source(name).split("\n-- " + name + ":", 1)[1]
    assert header_keys(name).get(1), f"{name}.lua names no KEYS[1]"
    assert "-- ARGV[1] " in text and "-- Returns " in text


def _lose_first_reply(broker: Any, name: str) -> None:
    """Make the first call of script ``name`` run, then fail as a lost reply does."""
    script = broker._scripts[name]
    lost: list[bool] = []

    def run_then_fail(keys: list[str], args: list[Any]) -> Any:
        reply = script(keys=keys, args=args)
        if not lost:
            lost.append(True)
            raise RedisConnectionError("reply lost")
        return reply

    broker._scripts[name] = run_then_fail


def test_a_claim_or_increment_retried_by_the_caller_acts_once(broker, peer) -> None:
    if isinstance(broker, MemoryBroker):
        pytest.skip("an in-process call cannot lose its reply")
    _lose_first_reply(broker, "claim")
    _lose_first_reply(broker, "increment")

    with pytest.raises(RedisConnectionError):
        broker.claim("lock", ttl=30)
    assert broker.claim("lock", ttl=30)  # the same call again: it had taken the claim
    assert not peer.claim("lock", ttl=30)
    with pytest.raises(RedisConnectionError):
        broker.increment("count", ttl=30)
    assert broker.increment("other", ttl=30) == 1  # another counter is another call
    assert broker.increment("count", ttl=30) == 1  # the same call again: counted once
    assert broker.increment("count", ttl=30) == 2
