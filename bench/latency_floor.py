"""The floor of an idle worker's start latency, by how a job reaches the thread running it.

Not a peer comparison: a probe of the designs themselves, with nothing but redis-py. A
sender process pushes a small JSON job and a receiver process (8 threads) starts it; the
latency is start time minus send time, as in workload 4. Seven ways in:

- ``brpop``: each worker thread blocks in ``BRPOP`` and runs what it pops (Huey's design);
- ``brpop+hop``: one thread pops, a worker thread runs it (one thread hand-off);
- ``publish``: a script stores the job and ``PUBLISH``es it, a subscriber thread runs it;
- ``publish+hop``: the same, then a worker thread runs it (what a push-notified worker
  whose arbiter hands jobs to worker threads costs at the least, before any fetch);
- ``wake+fetch+hop``: the ``PUBLISH`` only wakes the subscriber thread, which pops the
  job (one round trip) and hands it to a worker thread (our engine since the subscriber
  fetches for an idle arbiter);
- ``wake+hop+fetch+hop``: the subscriber thread wakes another thread (an arbiter), which
  pops the job and hands it to a worker thread (our engine before that);
- ``wake+fetch+cond``: as ``wake+fetch+hop``, the worker threads waiting on a
  ``threading.Condition`` the fetcher notifies instead of a ``queue.SimpleQueue``.

Run: ``bench/.peers/ours/bin/python bench/latency_floor.py`` (any Python with redis-py).
"""

from __future__ import annotations

import argparse
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib.redis_server import RedisServer
from benchlib.stats import percentile

DESIGNS = (
    "brpop", "brpop+hop", "publish", "publish+hop", "wake+fetch+hop", "wake+hop+fetch+hop",
    "wake+fetch+cond",
)  # fmt: skip
JOBS, STARTS, CHANNEL = "floor:jobs", "floor:starts", "floor:channel"
#: Stores the job as an enqueue would (queued for the designs that fetch), then publishes it.
STORE_AND_PUBLISH = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('RPUSH', KEYS[3], ARGV[2])
return redis.call('PUBLISH', KEYS[2], ARGV[2])
"""
THREADS = 8


def start_job(client: redis.Redis, raw: bytes) -> None:
    """What every design does with a job: note its start beside its send time."""
    started = time.time()
    client.rpush(STARTS, json.dumps([json.loads(raw)["sent"], started]))


def worker_threads(url: str, jobs: Any = None) -> Any:
    """``THREADS`` threads running the jobs put on ``jobs`` (a ``SimpleQueue`` if None),
    which is returned."""
    jobs = queue.SimpleQueue() if jobs is None else jobs

    def run() -> None:
        client = redis.Redis.from_url(url, socket_timeout=None)  # blocking pops: no read timeout
        while True:
            start_job(client, jobs.get())

    for _ in range(THREADS):
        threading.Thread(target=run, daemon=True).start()
    return jobs


class CondQueue:
    """The hand-off of ``wake+fetch+cond``: idle worker threads wait on one condition."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._items: list[bytes] = []

    def put(self, raw: bytes) -> None:
        with self._condition:
            self._items.append(raw)
            self._condition.notify()

    def get(self) -> bytes:
        with self._condition:
            self._condition.wait_for(lambda: self._items)
            return self._items.pop(0)


def popping(url: str, handle: Callable[[redis.Redis, bytes], None]) -> None:
    """Block in BRPOP forever, handing each job to ``handle``."""
    client = redis.Redis.from_url(url, socket_timeout=None)  # blocking pops: no read timeout
    while True:
        reply = client.brpop([JOBS], timeout=1)
        if reply:
            handle(client, reply[1])


def subscribed(url: str, handle: Callable[[redis.Redis, bytes], None]) -> None:
    """Read the channel forever, handing each job to ``handle``."""
    client = redis.Redis.from_url(url, socket_timeout=None)  # blocking pops: no read timeout
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    while True:
        message = pubsub.get_message(timeout=1.0)
        if message:
            handle(client, message["data"])


def pop_all(client: redis.Redis, jobs: Any) -> None:
    """The fetch: pop every queued job, each a round trip (one, in this probe)."""
    while raw := client.lpop(JOBS):
        jobs.put(raw)


def fetching(url: str, jobs: Any, woken: threading.Event) -> None:
    """An arbiter: on each wake-up, pop the queued jobs (a round trip) for the workers."""
    client = redis.Redis.from_url(url, socket_timeout=None)  # blocking pops: no read timeout
    while True:
        if woken.wait(1.0):
            woken.clear()
            pop_all(client, jobs)


def receive(url: str, design: str) -> None:
    """The receiver process of ``design``; runs until killed."""
    if design == "brpop":
        for _ in range(THREADS):
            threading.Thread(target=popping, args=(url, start_job), daemon=True).start()
        threading.Event().wait()
    jobs = worker_threads(url, CondQueue() if design.endswith("cond") else None)
    hop = lambda client, raw: jobs.put(raw)  # noqa: E731
    if design.startswith("wake"):
        woken = threading.Event()
        if "hop+fetch" in design:
            threading.Thread(target=fetching, args=(url, jobs, woken), daemon=True).start()
            subscribed(url, lambda client, raw: woken.set())
        subscribed(url, lambda client, raw: pop_all(client, jobs))
    listen = popping if design.startswith("brpop") else subscribed
    listen(url, hop if design.endswith("+hop") else start_job)


def measure(url: str, design: str, count: int) -> list[float]:
    """Start a receiver, send ``count`` jobs one at a time; the latencies in ms."""
    client = redis.Redis.from_url(url, socket_timeout=None)  # blocking pops: no read timeout
    client.delete(JOBS, STARTS)
    receiver = subprocess.Popen([sys.executable, __file__, "--receive", design, url])
    try:
        store = client.register_script(STORE_AND_PUBLISH)
        return [_one(client, store, design) for _ in range(count + 20)][20:]  # 20 warm-ups
    finally:
        receiver.kill()
        receiver.wait()


def _one(client: redis.Redis, store: Callable, design: str) -> float:
    job = json.dumps({"sent": time.time(), "task": "stamp", "args": [], "pad": "x" * 200})
    if design.startswith("brpop"):
        client.lpush(JOBS, job)
    else:  # the receiver may still be subscribing: send until someone listens
        while not store(keys=["floor:stored", CHANNEL, JOBS], args=["id", job]):
            client.delete(JOBS)  # nobody heard it: no copy left for a later fetch
            time.sleep(0.01)
    _, raw = client.blpop([STARTS], timeout=10) or (None, None)
    if raw is None:
        raise RuntimeError(f"{design}: no job started within 10 s")
    sent, started = json.loads(raw)
    time.sleep(0.005)  # the receiver idle again, as in workload 4
    return (started - sent) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="each design, interleaved")
    parser.add_argument("--receive", nargs=2, metavar=("DESIGN", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receive:
        receive(args.receive[1], args.receive[0])
        return
    samples: dict[str, list[float]] = {design: [] for design in DESIGNS}
    with RedisServer() as server:
        for _ in range(args.rounds):
            for design in DESIGNS:
                samples[design] += measure(server.url, design, args.jobs)
    for design, values in samples.items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"{design:<20} p50 {p50:.2f} ms  p99 {p99:.2f} ms  ({len(values)} jobs)")


if __name__ == "__main__":
    main()
