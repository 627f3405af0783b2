"""The CPU cost of Celery's events (``-E``) and of Prometheus metrics on workload 3's jobs.

Runs a worker in this process (8 threads) on a throwaway Redis, draining ``--jobs`` no-op
jobs enqueued beforehand, alternately without and with the feature (the order swapped every
run, so that a change in the machine's load falls on both):

- ``--compare events`` (the default): a facade app's worker without and with its events
  (task and worker events, as ``spinach-compat worker -E``), a receiver listening as Flower
  would (``impls/events_listener.py``, a process of its own: its CPU is not counted, what
  it costs Redis is); ``--unheard``: nobody listening (the worker pauses its task events);
- ``--compare metrics``: a native engine's worker without and with ``JobMetrics`` counting
  its jobs (what ``spinach worker --metrics-port`` connects; the server, scraped every 15 s
  or so, costs nothing next to it).

It prints the medians of ``--runs``: the CPU seconds this process spent per 1,000 jobs
(every thread), Redis's CPU per job (``INFO cpu``), the CPU of the threads running the jobs
per job (their thread clocks: what the feature adds to the jobs' own path, its recording
and its contention, shows there), with its system part and their context switches per job
(``/proc/self/task``: a thread waking to take the GIL back, or waiting on a busy Redis,
shows there), the jobs per second, and for the events the CPU time of their publisher
thread per job (and the listener's CPU seconds in all, at its end). On a shared machine
the CPU times are the figures to compare: they do not count the time other processes took
(the publisher's, of one thread, is the steadiest); the jobs per second move with the load.
Each run's pair is printed too: a cost is real when most pairs agree.

``--time-sends`` also times each ``job_started`` and ``job_finished`` send of the worker
with its thread's CPU clock (``time.thread_time``), with the feature on and off alike: the
difference is what the receivers cost the job threads, dispatch included (each timing adds
about a microsecond to both sides, and to the process's CPU). For the metrics it is the
steadiest figure: their work is all in those sends.

    .venv/bin/python bench/events_cost.py --jobs 20000 --runs 7
    .venv/bin/python bench/events_cost.py --compare metrics --jobs 20000 --runs 7 --time-sends
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.redis_server import RedisServer, cpu_seconds

THREADS = 8  #: worker threads, as workload 3's
IMPLS = Path(__file__).resolve().parent / "impls"
#: Seconds the events listener gets to subscribe.
LISTENER_TIMEOUT = 30.0


class Figures(NamedTuple):
    """One worker's drain: CPU seconds of this process and of Redis, wall seconds, the
    events' publisher thread's CPU seconds (0 without events), the CPU seconds of the
    threads that ran the jobs (together), the job threads' CPU seconds in the timed
    sends (0 without ``--time-sends``), the system part of the job threads' CPU seconds and
    their context switches (voluntary, involuntary; both from ``/proc``, 0 elsewhere)."""

    cpu: float
    redis_cpu: float
    wall: float
    publisher: float
    job_threads: float
    sends: float = 0.0
    job_system: float = 0.0
    job_switches: tuple[int, int] = (0, 0)


class SendTimer:
    """``--time-sends``: while entered, each ``job_started`` and ``job_finished`` send adds
    the CPU time of its thread to ``spent`` (a list: ``append`` needs no lock)."""

    def __init__(self) -> None:
        self.spent: list[float] = []

    def __enter__(self) -> SendTimer:
        from spinach import signals

        for signal in (signals.job_started, signals.job_finished):
            signal.send = self._timed(signal.send)  # type: ignore[method-assign]
        return self

    def _timed(self, send: Callable[..., object]) -> Callable[..., object]:
        spent, clock = self.spent, time.thread_time

        def timed(*args: object, **kwargs: object) -> object:
            start = clock()
            try:
                return send(*args, **kwargs)
            finally:
                spent.append(clock() - start)

        return timed

    def __exit__(self, *exc: object) -> None:
        from spinach import signals

        for signal in (signals.job_started, signals.job_finished):
            del signal.send  # back to the class's


def measure(url: str, jobs: int, events: bool, run: int) -> Figures:
    """A facade worker, with its events or not, draining ``jobs`` no-op jobs."""
    from spinach_compat import Celery, group
    from spinach_compat.events.worker import WorkerEvents

    app = Celery(f"cost{run}{int(events)}", broker=url, set_as_current=False)
    done, count = _counter(jobs)
    app.task(ignore_result=True, name="noop")(count)
    noop = app.tasks["noop"]
    for start in range(0, jobs, 1000):
        group(noop.s() for _ in range(min(1000, jobs - start))).apply_async()
    service = WorkerEvents(app, f"cost@{run}", tasks=True) if events else None
    return _run_worker(
        url, done, jobs, lambda: app.start_worker(concurrency=THREADS, block=False),
        app.stop_worker, (service.start, service.shutdown) if service else None,
    )  # fmt: skip


def measure_metrics(url: str, jobs: int, metrics: bool, run: int) -> Figures:
    """A native worker, counting its jobs for Prometheus or not, draining ``jobs`` no-op
    jobs."""
    from spinach import Batch, Engine, RedisBroker
    from spinach.contrib.prometheus import JobMetrics

    spin = Engine(RedisBroker(url), namespace=f"cost{run}{int(metrics)}")
    done, count = _counter(jobs)
    spin.task(name="noop")(count)
    for start in range(0, jobs, 1000):
        batch = Batch()
        for _ in range(min(1000, jobs - start)):
            batch.schedule("noop")
        spin.schedule_batch(batch)
    counting = JobMetrics(spin.namespace) if metrics else None
    return _run_worker(
        url, done, jobs, lambda: spin.start_workers(number=THREADS, block=False),
        spin.stop_workers, (counting.connect, counting.disconnect) if counting else None,
    )  # fmt: skip


def _run_worker(
    url: str,
    done: threading.Event,
    jobs: int,
    start_workers: Callable[[], object],
    stop_workers: Callable[[], object],
    around: tuple[Callable[[], object], Callable[[], object]] | None,
) -> Figures:
    """The figures of a worker draining ``jobs`` jobs, with ``around``'s start and stop
    (the feature measured) around its own, when given."""

    def start() -> None:
        if around is not None:
            around[0]()
        start_workers()

    figures = _drain(url, start, done, jobs)
    stop_workers()
    if around is not None:
        around[1]()
    return figures


def _counter(jobs: int) -> tuple[threading.Event, Callable[[], None]]:
    """An event set when the returned no-op task has run ``jobs`` times."""
    done, count, lock = threading.Event(), [0], threading.Lock()

    def noop() -> None:
        with lock:
            count[0] += 1
            if count[0] == jobs:
                done.set()

    return done, noop


def _drain(url: str, start: Callable[[], None], done: threading.Event, jobs: int) -> Figures:
    """Start the worker and measure until ``done`` (all ``jobs`` ran)."""
    import redis

    client = redis.Redis.from_url(url)
    redis_cpu, cpu, wall = cpu_seconds(client), time.process_time(), time.perf_counter()
    start()
    if not done.wait(600):
        raise SystemExit(f"not all of {jobs} jobs ran in 600 s")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    redis_cpu = cpu_seconds(client) - redis_cpu
    client.close()
    job_threads = _thread_cpu(lambda name: "-worker-" in name)
    system, switches = _thread_kernel(lambda name: "-worker-" in name)
    publisher = _thread_cpu("spinach-events".__eq__)
    return Figures(cpu, redis_cpu, wall, publisher, job_threads, 0.0, system, switches)


def _thread_cpu(named: Callable[[str], bool]) -> float:
    """The CPU seconds the running threads whose name is ``named`` spent so far (0 if none
    runs); the worker's threads start with the drain, so that is what they spent in it."""
    total = 0.0
    for thread in threading.enumerate():
        if named(thread.name) and thread.ident is not None:
            with contextlib.suppress(OSError):  # ended meanwhile
                total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return total


def _thread_kernel(named: Callable[[str], bool]) -> tuple[float, tuple[int, int]]:
    """The system CPU seconds (``stime``, in clock ticks) and the context switches
    (voluntary, involuntary) of the running threads whose name is ``named``, from
    ``/proc/self/task``: waking to take the GIL back and failing shows there."""
    system, voluntary, involuntary = 0.0, 0, 0
    tick = os.sysconf("SC_CLK_TCK")
    for thread in threading.enumerate():
        if not named(thread.name) or thread.native_id is None:
            continue
        task = Path(f"/proc/self/task/{thread.native_id}")
        with contextlib.suppress(OSError):  # ended meanwhile, or no /proc
            stat = (task / "stat").read_text().rpartition(")")[2].split()
            system += int(stat[12]) / tick  # field 15 (stime); 3 is stat[0]
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    involuntary += int(line.split()[1])
    return system, (voluntary, involuntary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", choices=("events", "metrics"), default="events")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--time-sends", action="store_true",
                        help="also time the job signals' sends (thread CPU clock)")  # fmt: skip
    parser.add_argument("--unheard", action="store_true",
                        help="events: no receiver listening (they pause)")  # fmt: skip
    args = parser.parse_args()
    run_one = measure if args.compare == "events" else measure_metrics
    figures: dict[bool, list[Figures]] = {False: [], True: []}
    listening = args.compare == "events" and not args.unheard
    with RedisServer() as server, _listener(server.url) if listening else contextlib.nullcontext():
        for run in range(args.runs):
            for on in (False, True) if run % 2 == 0 else (True, False):
                figures[on].append(_measured(run_one, server.url, args, on, run))
    _report(figures, args.jobs, args.compare)


@contextlib.contextmanager
def _listener(url: str) -> Iterator[None]:
    """``impls/events_listener.py`` subscribed to the events of the Redis at ``url``."""
    import redis

    env = {**os.environ, "BENCH_REDIS_URL": url}
    command = [sys.executable, "events_listener.py"]
    process = subprocess.Popen(command, cwd=IMPLS, env=env, stdin=subprocess.DEVNULL)
    client, deadline = redis.Redis.from_url(url), time.monotonic() + LISTENER_TIMEOUT
    try:
        while not client.pubsub_numpat():
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the events listener did not subscribe")
            time.sleep(0.01)
        yield
    finally:
        listener_cpu = _process_cpu(process.pid)
        process.terminate()
        process.wait()
        heard = int(client.get("bench:events:heard") or 0)
        print(f"listener: {heard} messages heard, {listener_cpu:.2f} CPU seconds in all")
        client.close()


def _process_cpu(pid: int) -> float:
    """The CPU seconds (user and system) process ``pid`` spent so far (0 without ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _measured(run_one: Callable[..., Figures], url: str, args: argparse.Namespace, on: bool,
              run: int) -> Figures:  # fmt: skip
    """One run's figures, with the sends' time if ``--time-sends``."""
    if not args.time_sends:
        return run_one(url, args.jobs, on, run)
    with SendTimer() as timer:
        figures = run_one(url, args.jobs, on, run)
    return figures._replace(sends=sum(timer.spent))


def _report(figures: dict[bool, list[Figures]], jobs: int, feature: str) -> None:
    def median(on: bool, field: str, scale: float) -> float:
        return statistics.median(getattr(r, field) for r in figures[on]) * scale

    rows = [
        ("CPU seconds per 1000 jobs", "cpu", 1000 / jobs, ".3f"),
        ("Redis CPU, us per job", "redis_cpu", 1e6 / jobs, ".1f"),
        ("job threads' CPU, us per job", "job_threads", 1e6 / jobs, ".1f"),
        ("  of which system", "job_system", 1e6 / jobs, ".1f"),
    ]
    print(f"{'':28}{feature + ' off':>14}{feature + ' on':>14}{'cost':>8}")
    for label, field, scale, spec in rows:
        off, on = median(False, field, scale), median(True, field, scale)
        cost = f"{(on / off - 1) * 100:+7.1f}%" if off else ""  # no system time: no ratio
        print(f"{label:28}{off:14{spec}}{on:14{spec}}{cost}")
    rate = {on: jobs / median(on, "wall", 1) for on in (False, True)}
    print(f"{'jobs/s (wall)':28}{rate[False]:14.0f}{rate[True]:14.0f}"
          f"{(rate[False] / rate[True] - 1) * 100:+7.1f}%")  # fmt: skip
    for index, kind in enumerate(("voluntary", "involuntary")):
        off, on = (statistics.median(r.job_switches[index] for r in figures[o]) / jobs
                   for o in (False, True))  # fmt: skip
        print(f"{'  switches per job, ' + kind[:5]:28}{off:14.2f}{on:14.2f}")
    if feature == "events":
        publisher = median(True, "publisher", 1e6 / jobs)
        print(f"{'publisher thread, us per job':28}{'':14}{publisher:14.1f}")
    if figures[True][0].sends:
        off, on = median(False, "sends", 1e6 / jobs), median(True, "sends", 1e6 / jobs)
        print(f"{'job signal sends, us per job':28}{off:14.1f}{on:14.1f}{on - off:+7.1f}us")
    pairs = zip(figures[False], figures[True], strict=True)
    print("CPU per job, each run's pair (on against off): " + ", ".join(
        f"{(on.cpu / off.cpu - 1) * 100:+.0f}%" for off, on in pairs
    ))  # fmt: skip


if __name__ == "__main__":
    main()
