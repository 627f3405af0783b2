"""What every benchmark job does, whatever runs it: Redis round trips proving it ran.

This module runs inside each implementation's own virtualenv (workers and producers), so
it needs nothing but redis-py. The Redis URL comes from ``BENCH_REDIS_URL``.
"""

from __future__ import annotations

import os
import threading
import time

import redis

#: Jobs run so far; the job making it reach ``TARGET_KEY`` pushes its end time to
#: ``DONE_KEY``, which the harness waits on.
COUNT_KEY = "bench:count"
TARGET_KEY = "bench:target"
DONE_KEY = "bench:done"
#: ``"<start time> <sent or due time>"`` of each ``stamp`` job, as Unix times.
STARTS_KEY = "bench:starts"

_COUNT_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == tonumber(redis.call('GET', KEYS[2]) or '-1') then
    redis.call('RPUSH', KEYS[3], ARGV[1])
end
return n
"""

_lock = threading.Lock()
_state: dict = {"pid": None, "client": None, "script": None}


def redis_url() -> str:
    """The URL of the harness's throwaway server."""
    return os.environ["BENCH_REDIS_URL"]


def client() -> redis.Redis:
    """A client of this process (a forked child makes its own)."""
    with _lock:
        if _state["pid"] != os.getpid():
            connection = redis.Redis.from_url(redis_url())
            _state.update(
                pid=os.getpid(),
                client=connection,
                script=connection.register_script(_COUNT_SCRIPT),
            )
        return _state["client"]


def count() -> None:
    """The no-op job: count one more job done (one round trip)."""
    client()
    _state["script"](keys=[COUNT_KEY, TARGET_KEY, DONE_KEY], args=[repr(time.time())])


def stamp(sent: float) -> None:
    """The latency job: record its start time beside the time it was sent (or due)."""
    started = time.time()
    client().rpush(STARTS_KEY, f"{started!r} {sent!r}")
