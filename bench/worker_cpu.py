"""The worker process's own CPU per job in workload 3, against the bare threads'.

``.venv/bin/python bench/worker_cpu.py [--jobs N] [--bare | --metrics]`` (from a checkout whose
``.venv`` has spinach): a throwaway redis-server, N no-op jobs (each one counting script
call, as bench's) enqueued in batches, then drained by one engine of 8 threads running in
this process; ``--bare`` runs 8 threads doing only the jobs' own call instead; ``--metrics`` counts
the jobs' Prometheus metrics as ``--metrics-port`` does (prometheus-client needed). It prints
this process's CPU per job (user and system, from ``getrusage``), its context switches per
job, Redis's CPU per job and the load average. On a shared machine the CPU per job moves
less with the load than the rate does; alternate the runs of two checkouts
(``PYTHONPATH=<other checkout>`` runs another one's ``spinach`` with this venv).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable

import redis

from spinach import Batch, Engine, RedisBroker

#: The job: count one done, and say when the last one is (``DONE``), in one script call.
COUNT = """local n = redis.call('INCR', KEYS[1])
if n == tonumber(ARGV[2]) then redis.call('RPUSH', KEYS[2], ARGV[1]) end
return n"""
KEYS = ["bench:count", "bench:done"]
THREADS = 8


def start_redis() -> tuple[subprocess.Popen, redis.Redis]:
    """A throwaway redis-server on a free port (without persistence), and a client."""
    port = _free_port()
    command = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen([*command, "--dir", tempfile.mkdtemp()], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return server, client
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_engine(client: redis.Redis, jobs: int, metrics: bool = False) -> None:
    """Enqueue ``jobs`` no-op jobs, then drain them with one engine in this process (its
    Prometheus metrics counted if ``metrics``)."""
    count = client.register_script(COUNT)
    url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
    engine = Engine(RedisBroker(url), namespace="bench")

    @engine.task(name="noop")
    def noop() -> None:
        count(keys=KEYS, args=[repr(time.time()), jobs])

    for start in range(0, jobs, 1000):
        batch = Batch()
        for _ in range(min(1000, jobs - start)):
            batch.schedule(noop)
        engine.schedule_batch(batch)
    if metrics:
        from spinach.contrib.prometheus import JobMetrics

        JobMetrics(engine.namespace).connect()
    measured(client, jobs, lambda: _drain(engine, client))


def _drain(engine: Engine, client: redis.Redis) -> None:
    engine.start_workers(THREADS, block=False)
    while not client.blpop(KEYS[1:], timeout=1):
        pass
    engine.stop_workers()


def run_bare(client: redis.Redis, jobs: int) -> None:
    """``jobs`` calls of the job's own script by 8 threads, nothing else."""
    count = client.register_script(COUNT)
    left, lock = [jobs], threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            count(keys=KEYS, args=[repr(time.time()), jobs])

    def run() -> None:
        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    measured(client, jobs, run)


def measured(client: redis.Redis, jobs: int, run: Callable[[], None]) -> None:
    """Run ``run()`` and print what it cost per job."""
    redis_before, usage_before = _redis_cpu(client), resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    run()
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    per_job = 1e6 / jobs
    user = (usage.ru_utime - usage_before.ru_utime) * per_job
    system = (usage.ru_stime - usage_before.ru_stime) * per_job
    switches = usage.ru_nvcsw - usage_before.ru_nvcsw + usage.ru_nivcsw - usage_before.ru_nivcsw
    print(
        f"{jobs / wall:.0f} jobs/s; process CPU per job {user + system:.0f} us (user {user:.0f}, "
        f"system {system:.0f}), {switches / jobs:.1f} context switches per job; Redis CPU per "
        f"job {(_redis_cpu(client) - redis_before) * per_job:.0f} us; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--bare", action="store_true", help="the bare threads instead")
    parser.add_argument("--metrics", action="store_true", help="count Prometheus metrics")
    args = parser.parse_args()
    server, client = start_redis()
    try:
        if args.bare:
            run_bare(client, args.jobs)
        else:
            run_engine(client, args.jobs, args.metrics)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
