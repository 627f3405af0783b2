"""RedisBroker's tunables: one ``RedisSettings`` object, or keywords as before, not both."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from spinach.brokers.redis import RedisBroker
from spinach.brokers.redis_settings import RedisSettings
from spinach.job import Job
from spinach.testing import FakeClock

#: Nothing listens there: building a broker connects to nothing.
NOWHERE = "redis://127.0.0.1:9/0"


def test_without_tunables_the_broker_has_the_defaults() -> None:
    broker = RedisBroker(NOWHERE)
    assert broker.settings == RedisSettings()
    assert broker.max_fetch_size == RedisSettings().max_fetch_size


@pytest.mark.parametrize(
    "build",
    [
        lambda **tunables: RedisBroker(NOWHERE, **tunables),
        lambda **tunables: RedisBroker(NOWHERE, settings=RedisSettings(**tunables)),
    ],
    ids=["keywords", "settings"],
)
def test_keywords_and_settings_configure_the_same_broker(build) -> None:
    broker = build(
        max_fetch_size=7, socket_timeout=3.0, command_retries=1, heartbeat_interval=1.0,
        dead_worker_threshold=4.0, reconnect_base_delay=0.5, reconnect_max_delay=0.2,
    )  # fmt: skip

    assert broker.settings == RedisSettings(
        max_fetch_size=7, socket_timeout=3.0, command_retries=1, heartbeat_interval=1.0,
        dead_worker_threshold=4.0, reconnect_base_delay=0.5, reconnect_max_delay=0.2,
    )  # fmt: skip
    assert broker.max_fetch_size == 7
    assert (broker.heartbeat_interval, broker.dead_worker_threshold) == (1.0, 4.0)
    assert broker.reconnect_max_delay == 0.5  # raised to the base delay
    kwargs = broker.redis.get_connection_kwargs()
    assert kwargs["socket_timeout"] == 3.0
    assert kwargs["retry"].get_retries() == 1


def test_settings_apply_to_the_broker_at_work(redis_broker_factory) -> None:
    clock = FakeClock(start=1_700_000_000.0)
    broker = redis_broker_factory(clock=clock, settings=RedisSettings(max_fetch_size=2))
    broker.enqueue_jobs([Job("task", "q", clock(), 0) for _ in range(5)])
    assert len(broker.get_jobs_from_queue("q", 10)) == 2


def test_a_tunable_given_both_ways_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"max_fetch_size given both as keyword and in settings"):
        RedisBroker(NOWHERE, settings=RedisSettings(max_fetch_size=5), max_fetch_size=5)


def test_an_unknown_keyword_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="unexpected keyword arguments: max_fetch"):
        RedisBroker(NOWHERE, max_fetch=5)


def test_settings_are_checked_when_built() -> None:
    with pytest.raises(ValueError, match="max_fetch_size must be positive, not 0"):
        RedisSettings(max_fetch_size=0)
    with pytest.raises(ValueError, match="reconnect_base_delay must be positive"):
        RedisBroker(NOWHERE, reconnect_base_delay=0)
    with pytest.raises(ValueError, match="at least twice heartbeat_interval"):
        RedisBroker(NOWHERE, settings=RedisSettings(heartbeat_interval=10.0))


def test_settings_are_frozen_and_documented() -> None:
    settings = RedisSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_fetch_size = 1  # type: ignore[misc]
    assert dataclasses.replace(settings, max_fetch_size=1).max_fetch_size == 1
    lines = inspect.getsource(RedisSettings).splitlines()
    for field in dataclasses.fields(RedisSettings):
        at = next(i for i, line in enumerate(lines) if line.startswith(f"    {field.name}:"))
        above = at - 1
        while lines[above].startswith("    # ") or lines[above].startswith("    #  "):
            above -= 1
        assert lines[above].startswith("    #: "), f"{field.name} has no #: comment"
