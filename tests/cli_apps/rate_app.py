"""An Engine named ``spin`` on the Redis of ``CLI_REDIS_URL`` whose task ``limited`` is
limited to ``RATE`` jobs per second (burst ``BURST``) for the whole namespace; each run
records its start time in the Redis list ``STARTS`` (tests/test_rate_limits.py)."""

import os
import time

import redis

from spinach import Engine, RedisBroker

RATE, BURST, STARTS = 20, 5, "rate-test/starts"  # as in tests/test_rate_limits.py

spin = Engine(RedisBroker(os.environ["CLI_REDIS_URL"]), namespace="rate")
_redis = redis.Redis.from_url(os.environ["CLI_REDIS_URL"])
_redis.ping()  # connected before the first run, so its start is not later than the others


@spin.task(name="limited", rate_limit=f"{RATE}/s", rate_burst=BURST)
def limited() -> None:
    _redis.rpush(STARTS, repr(time.time()))
