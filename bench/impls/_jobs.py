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
#: The end time of the first job (workload 9 times from it, not from the worker's start).
FIRST_KEY = "bench:first"
#: ``"<start time> <sent or due time>"`` of each ``stamp`` job, as Unix times.
STARTS_KEY = "bench:starts"

_COUNT_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then
    redis.call('SET', KEYS[4], ARGV[1])
end
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
    keys = [COUNT_KEY, TARGET_KEY, DONE_KEY, FIRST_KEY]
    _state["script"](keys=keys, args=[repr(time.time())])


#: Iterations of the CPU-bound job of workload 9: a few milliseconds of pure Python.
CPU_LOOP = 20_000

#: Seconds the I/O-bound job of workload 9 waits (``time.sleep``: patched under gevent).
IO_WAIT = 0.01


def cpu_job() -> None:
    """Workload 9, CPU-bound: a pure-Python loop, then count one job done."""
    total = 0
    for i in range(CPU_LOOP):
        total += i * i
    count()


def io_job() -> None:
    """Workload 9, I/O-bound: wait ``IO_WAIT`` seconds, then count one job done."""
    time.sleep(IO_WAIT)
    count()


def stamp(sent: float) -> None:
    """The latency job: record its start time beside the time it was sent (or due)."""
    started = time.time()
    client().rpush(STARTS_KEY, f"{started!r} {sent!r}")
