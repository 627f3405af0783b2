"""The workloads, run for one implementation at a time against the harness's Redis.

One repetition of an implementation has up to five phases, each with fresh Redis data:

- **A**: enqueue ``jobs`` no-op jobs one at a time (workload 1), then start the workers of
  workload 3 and time them from process start until the last job is done (workload 3; its
  peak memory is workload 7; workload 8 for that process count);
- **B**: enqueue ``jobs`` in batches (workload 2; one at a time, untimed, where there is no
  batch API) and drain them with the other process count of workload 8;
- **idle**: start one worker group and, once it is idle, measure latency (4), timing
  precision (5) and ``delay().get()`` round trips (6);
- **pools** (workload 9, the facade and Celery only): ``pool_jobs`` CPU-bound, then
  I/O-bound jobs drained by one worker started with the Celery command line's ``-P
  prefork -c 2``, then I/O-bound ones with ``-P gevent -c 100``; jobs per second from the
  end of the first job to the end of the last (the worker's start left out);
- **cluster** (workload 10, ours only, when named): ``jobs`` drained by one worker whose
  broker is a Redis Cluster of three masters; each node's CPU and commands per job.

A column with ``partitions`` (``cluster_partitions``) runs its broker on a partitioned
namespace of the one Redis (of the cluster): ``?partitions=N`` in ``BENCH_BROKER_URL``.

Enqueues and drains also read the Redis CPU they took (``INFO cpu``), per job. A column
without a broker (``Impl.brokerless``, the bare threads) runs the drains only.

Each job proves it ran by counting itself in Redis; the job reaching the target pushes its
end time, which the harness waits on. Workers that run one job at a time per process
(``Impl.one_job_per_process``) drain ``slow_jobs`` fresh jobs instead of the ``jobs`` of
workloads 1 and 2, which are then discarded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from . import DEFAULT_WORKLOADS
from .impls import REDIS_URL_PLACEHOLDER, Impl
from .procs import RssSampler, WorkerGroup
from .redis_cluster import RedisCluster
from .redis_server import RedisServer
from .stats import percentile

IMPLS_DIR = Path(__file__).resolve().parent.parent / "impls"
sys.path.insert(0, str(IMPLS_DIR))
import _jobs  # noqa: E402  (the keys the jobs use, from beside the jobs)

#: Workload 9: (metric, job kind, pool, concurrency) of each measurement.
POOL_RUNS = (
    ("pool_cpu_prefork", "cpu", "prefork", 2),
    ("pool_io_prefork", "io", "prefork", 2),
    ("pool_io_gevent", "io", "gevent", 100),
)


#: Why the bare-thread column has no figure for the workloads needing a broker.
BROKERLESS_NOTE = "no broker: nothing to enqueue, wait for or schedule"

#: Metrics, by workload, that a column without a broker cannot have (``Impl.brokerless``).
BROKER_METRICS = {
    1: ("enqueue_single", "redis_us_enqueue_single"),
    2: ("enqueue_batch", "redis_us_enqueue_batch"),
    4: ("latency_p50", "latency_p99"),
    5: ("timing_p50", "timing_max", "timing_early"),
}


class Drained(NamedTuple):
    """What one drain measured: seconds from the workers' start to the last job's end,
    their peak memory (bytes, 0 unless sampled) and the Redis CPU seconds it took."""

    seconds: float
    rss: int
    redis_cpu: float
    at_done: Any = None  #: what the drain's ``at_done`` returned, the last job just done


@dataclass
class Options:
    """Sizes and selection of one benchmark run (defaults: the full run)."""

    runs: int = 3
    jobs: int = 20_000  #: jobs of workloads 1, 2, 3, 7 and 8
    slow_jobs: int = 1_000  #: jobs of 3, 7 and 8 for workers running one job per process
    batch_size: int = 1_000
    threads: int = 8
    latency_jobs: int = 200
    timing_jobs: int = 100
    timing_ahead: float = 2.0
    timing_spacing: float = 0.01  #: seconds between the due times of workload 5
    roundtrips: int = 200
    pool_jobs: int = 1_000  #: jobs of each measurement of workload 9
    phase_timeout: float = 600.0  #: seconds one drain or driver call may take
    workloads: frozenset[int] = DEFAULT_WORKLOADS


@dataclass
class ImplResult:
    """Per-repetition values of each metric of one implementation, and what went wrong."""

    metrics: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  #: metric -> why it is n/a
    errors: list[str] = field(default_factory=list)
    samples: dict[str, list[list[float]]] = field(default_factory=dict)  #: raw, per run
    #: Workload 10, per run: each node's port, CPU seconds and calls per command.
    cluster_nodes: list[list[dict[str, Any]]] = field(default_factory=list)

    def add(self, metric: str, value: float) -> None:
        self.metrics.setdefault(metric, []).append(value)

    def add_samples(self, name: str, values: list[float]) -> None:
        """Keep the raw samples of one run (latencies, lateness, round trips), in seconds."""
        self.samples.setdefault(name, []).append(values)


class Bench:
    """Runs the workloads of one implementation; results go to ``ImplResult``."""

    def __init__(self, options: Options, server: RedisServer, log_dir: Path):
        self.options = options
        self.server = server
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "BENCH_REDIS_URL": server.url, "PYTHONPATH": str(IMPLS_DIR)}
        self.env.pop("VIRTUAL_ENV", None)

    # -- one implementation ------------------------------------------------------------

    def run_once(self, impl: Impl, result: ImplResult, rep: int) -> None:
        """Every selected workload of ``impl``, once; errors are noted in ``result``."""
        wanted = self.options.workloads
        if impl.brokerless:
            for workload in wanted & BROKER_METRICS.keys():
                result.notes.update(dict.fromkeys(BROKER_METRICS[workload], BROKERLESS_NOTE))
        phases: list[tuple[str, set[int], Callable]] = [
            ("A", {1, 3, 7, 8}, self._phase_a),
            ("B", {2, 8}, self._phase_b),
            ("idle", {4, 5, 6}, self._phase_idle),
            ("pools", {9}, self._phase_pools),
            ("cluster", {10}, self._phase_cluster),
        ]
        skipped = {"pools": impl.pools is None, "idle": impl.brokerless}
        skipped["cluster"] = not impl.cluster
        base_env = self.env
        if impl.partitions > 1:
            self.env = {**base_env, "BENCH_BROKER_URL": partitioned(self.server.url, impl)}
        try:
            for name, needs, phase in phases:
                if not skipped.get(name) and wanted & needs:
                    self._guarded(impl, result, f"r{rep}-{name}", phase)
        finally:
            self.env = base_env

    def _guarded(self, impl: Impl, result: ImplResult, label: str, phase: Callable) -> None:
        started = time.monotonic()
        try:
            phase(impl, result, label)
        except Exception as exc:
            result.errors.append(f"{label}: {type(exc).__name__}: {exc}")
            _log(f"{impl.name} {label} FAILED: {type(exc).__name__}: {exc}")
        _log(f"{impl.name} {label} done in {time.monotonic() - started:.1f}s")

    def exec_jobs(self, impl: Impl) -> int:
        """Jobs of the execution workloads (3, 7, 8) of ``impl``."""
        if impl.one_job_per_process:
            return min(self.options.jobs, self.options.slow_jobs)
        return self.options.jobs

    def _phase_a(self, impl: Impl, result: ImplResult, label: str) -> None:
        """Workload 1, then 3 and 7 (and 8 for the process count of 3)."""
        wanted, jobs, exec_jobs = self.options.workloads, self.options.jobs, self.exec_jobs(impl)
        self._reset(exec_jobs)
        enqueues = 1 in wanted and not impl.brokerless
        if enqueues:
            cpu = self.server.cpu_seconds()
            enqueued = self.driver(impl, "enqueue-single", label, count=jobs)
            result.add("enqueue_single", jobs / enqueued["seconds"])
            result.add("redis_us_enqueue_single", self._per_job(cpu, jobs))
        if not wanted & {3, 7, 8}:
            return
        if not enqueues or exec_jobs != jobs:
            self._reset(exec_jobs)
            self._prefill(impl, label, exec_jobs)
        processes = impl.exec_processes
        drained = self.drain(impl, processes, label, exec_jobs, sample_rss=True)
        if 3 in wanted:
            result.add("exec", exec_jobs / drained.seconds)
            result.add("redis_us_exec", 1e6 * drained.redis_cpu / exec_jobs)
        if 7 in wanted:
            result.add("rss_peak", drained.rss / 2**20)
        if 8 in wanted:
            self._add_scaling(result, processes, exec_jobs, drained)

    def _add_scaling(
        self, result: ImplResult, processes: int, jobs: int, drained: Drained
    ) -> None:  # fmt: skip
        """Workload 8 for ``processes`` worker processes: jobs/s and Redis CPU per job."""
        result.add(f"exec_p{processes}", jobs / drained.seconds)
        result.add(f"redis_us_exec_p{processes}", 1e6 * drained.redis_cpu / jobs)

    def _per_job(self, cpu_before: float, jobs: int) -> float:
        """Microseconds of Redis CPU per job since ``cpu_before`` (``cpu_seconds()``)."""
        return 1e6 * (self.server.cpu_seconds() - cpu_before) / jobs

    def _prefill(self, impl: Impl, label: str, count: int) -> None:
        """Enqueue the jobs of a drain, untimed: in batches where possible (none without a
        broker: the bare threads read ``count`` from the target)."""
        if impl.brokerless:
            return
        size = self.options.batch_size
        if not self.driver(impl, "enqueue-batch", label, count=count, batch_size=size)["supported"]:
            self.driver(impl, "enqueue-single", label, count=count)

    def _phase_b(self, impl: Impl, result: ImplResult, label: str) -> None:
        """Workload 2, then 8 for the other process count."""
        wanted, jobs, exec_jobs = self.options.workloads, self.options.jobs, self.exec_jobs(impl)
        self._reset(exec_jobs)
        if 2 in wanted and not impl.brokerless:
            self._batch(impl, result, label)
        if 8 not in wanted:
            return
        if 2 not in wanted or "enqueue_batch" in result.notes or exec_jobs != jobs:
            self._reset(exec_jobs)
            self._prefill(impl, label, exec_jobs)
        processes = 1 if impl.exec_processes == 2 else 2
        drained = self.drain(impl, processes, label, exec_jobs)
        self._add_scaling(result, processes, exec_jobs, drained)

    def _batch(self, impl: Impl, result: ImplResult, label: str) -> None:
        """Workload 2: ``jobs`` enqueued in batches, with the Redis CPU it took."""
        jobs, size = self.options.jobs, self.options.batch_size
        cpu = self.server.cpu_seconds()
        batch = self.driver(impl, "enqueue-batch", label, count=jobs, batch_size=size)
        if batch["supported"]:
            result.add("enqueue_batch", jobs / batch["seconds"])
            result.add("redis_us_enqueue_batch", self._per_job(cpu, jobs))
        else:
            result.notes["enqueue_batch"] = result.notes["redis_us_enqueue_batch"] = batch["note"]

    def _phase_idle(self, impl: Impl, result: ImplResult, label: str) -> None:
        wanted, options = self.options.workloads, self.options
        self._reset(0)
        group = self.start_workers(impl, impl.exec_processes, label)
        try:
            if 4 in wanted:
                reply = self.driver(impl, "latency", label, group, count=options.latency_jobs)
                latencies = reply["latencies"]
                result.add_samples("latency_seconds", latencies)
                result.add("latency_p50", 1000 * percentile(latencies, 50))
                result.add("latency_p99", 1000 * percentile(latencies, 99))
            if 5 in wanted:
                self._timing(impl, result, label, group)
            if 6 in wanted:
                self._roundtrip(impl, result, label, group)
        finally:
            group.stop()

    def _timing(self, impl: Impl, result: ImplResult, label: str, group: WorkerGroup) -> None:
        options = self.options
        lateness = self.driver(
            impl, "timing", label, group, count=options.timing_jobs,
            ahead=options.timing_ahead, spacing=options.timing_spacing,
        )["lateness"]  # fmt: skip
        result.add_samples("lateness_seconds", lateness)
        result.add("timing_p50", 1000 * percentile(lateness, 50))
        result.add("timing_max", 1000 * max(lateness))
        result.add("timing_early", sum(1 for value in lateness if value < 0))

    def _roundtrip(self, impl: Impl, result: ImplResult, label: str, group: WorkerGroup) -> None:
        if not impl.roundtrip:
            note = "workload 6 compares the Celery facade with Celery only"
            result.notes["roundtrip_p50"] = result.notes["roundtrip_p99"] = note
            return
        reply = self.driver(impl, "roundtrip", label, group, count=self.options.roundtrips)
        if not reply["supported"]:
            result.notes["roundtrip_p50"] = result.notes["roundtrip_p99"] = reply["note"]
            return
        result.add_samples("roundtrip_seconds", reply["seconds"])
        result.add("roundtrip_p50", 1000 * percentile(reply["seconds"], 50))
        result.add("roundtrip_p99", 1000 * percentile(reply["seconds"], 99))

    def _phase_pools(self, impl: Impl, result: ImplResult, label: str) -> None:
        """Workload 9: ``pool_jobs`` CPU- or I/O-bound jobs drained by one worker of each
        pool of ``POOL_RUNS`` (the facade's, or Celery's, command line). Timed from the end
        of the first job to the end of the last, so that the worker's start (child
        processes spawned or forked, gevent's patching) is left out."""
        assert impl.pools is not None
        jobs = self.options.pool_jobs
        for metric, kind, pool, concurrency in POOL_RUNS:
            self._reset(jobs)
            self.driver(impl, "enqueue-pool", label, count=jobs, kind=kind, batch_size=1000)
            command = impl.pools(impl.venv, pool, concurrency)
            log = self.log_dir / f"{impl.name}-{label}-{metric}.log"
            group = WorkerGroup([command], IMPLS_DIR, self.env, log)
            seconds = self._drain(group, jobs).seconds
            first = float(self.server.client.get(_jobs.FIRST_KEY) or group.started_at)
            result.add(metric, (jobs - 1) / (group.started_at + seconds - first))

    def _phase_cluster(self, impl: Impl, result: ImplResult, label: str) -> None:
        """Workload 10: ``jobs`` enqueued in batches on a cluster of three masters, then
        drained by one worker process; jobs/s, and each node's CPU and commands per job
        (the jobs count themselves on the harness's server, not on the cluster)."""
        jobs, base_env = self.options.jobs, self.env
        with RedisCluster(executable=self.server.executable) as cluster:
            url = partitioned(cluster.url, impl, on_cluster=True)
            self.env = {**base_env, "BENCH_BROKER_URL": url}
            try:
                self._reset(jobs)
                self._prefill(impl, label, jobs)
                before = cluster.usage()
                drained = self.drain(
                    impl, impl.exec_processes, f"{label}-cluster", jobs, at_done=cluster.usage
                )
                pairs = zip(drained.at_done, before, strict=True)
                spent = [after.since(old) for after, old in pairs]
            finally:
                self.env = base_env
        result.add("cluster_exec", jobs / drained.seconds)
        spent.sort(key=lambda node: node.cpu, reverse=True)
        for rank, node in enumerate(spent, 1):
            result.add(f"cluster_node{rank}_us", 1e6 * node.cpu / jobs)
            result.add(f"cluster_node{rank}_calls", node.served() / jobs)
        result.cluster_nodes.append([vars(node) for node in spent])

    # -- processes -----------------------------------------------------------------------

    def _reset(self, target: int) -> None:
        """Empty Redis; the next drain waits for ``target`` jobs."""
        client = self.server.client
        client.flushall()
        client.set(_jobs.TARGET_KEY, target)

    def start_workers(self, impl: Impl, processes: int, label: str) -> WorkerGroup:
        """Start ``processes`` worker processes of ``impl`` (``threads`` threads each)."""
        commands = [
            [arg.replace(REDIS_URL_PLACEHOLDER, self.server.url) for arg in command]
            for command in impl.workers(impl.venv, self.options.threads, processes)
        ]
        log = self.log_dir / f"{impl.name}-{label}-p{processes}.log"
        return WorkerGroup(commands, IMPLS_DIR, self.env, log)

    def drain(
        self, impl: Impl, processes: int, label: str, jobs: int, sample_rss: bool = False,
        at_done: Callable[[], Any] | None = None,
    ) -> Drained:  # fmt: skip
        """Run the enqueued jobs with fresh workers (the peak memory of the workers only
        with ``sample_rss``; ``at_done`` called once the last job is done, before the
        workers stop)."""
        cpu = self.server.cpu_seconds()
        group = self.start_workers(impl, processes, label)
        return self._drain(group, jobs, sample_rss, cpu, at_done)

    def _drain(
        self, group: WorkerGroup, jobs: int, sample_rss: bool = False, cpu: float | None = None,
        at_done: Callable[[], Any] | None = None,
    ) -> Drained:  # fmt: skip
        """``drain`` with the workers of ``group``, just started; Redis CPU counted from
        ``cpu`` (``cpu_seconds()`` before they started), else from now, to the last job."""
        cpu = self.server.cpu_seconds() if cpu is None else cpu
        sampler = RssSampler(group) if sample_rss else None
        try:
            done_at = self._wait_done(group)
            redis_cpu = self.server.cpu_seconds() - cpu
            snapshot = at_done() if at_done else None
        finally:
            peak = sampler.stop() if sampler else 0
            group.stop()
        ran = int(self.server.client.get(_jobs.COUNT_KEY) or 0)
        if ran != jobs:
            raise RuntimeError(f"{ran} jobs ran instead of {jobs}")
        return Drained(done_at - group.started_at, peak, redis_cpu, snapshot)

    def _wait_done(self, group: WorkerGroup) -> float:
        """The Unix time the last job ended, waiting for it while the workers live."""
        deadline = time.monotonic() + self.options.phase_timeout
        while time.monotonic() < deadline:
            reply = self.server.client.blpop([_jobs.DONE_KEY], timeout=1)
            if reply is not None:
                return float(reply[1])
            group.check_running()
        ran = self.server.client.get(_jobs.COUNT_KEY)
        raise TimeoutError(f"only {ran} jobs ran in {self.options.phase_timeout}s")

    def driver(
        self, impl: Impl, action: str, label: str, group: WorkerGroup | None = None,
        **options: Any,
    ) -> dict[str, Any]:  # fmt: skip
        """Run ``driver.py IMPL ACTION`` in the implementation's venv; its JSON reply.

        With ``group``, the workers must stay up while the driver runs.
        """
        command = [str(impl.venv.python), "driver.py", impl.module, action]
        for name, value in options.items():
            command += [f"--{name.replace('_', '-')}", str(value)]
        log = self.log_dir / f"{impl.name}-{label}-{action}.err"
        with log.open("wb") as errors:
            process = subprocess.Popen(
                command, cwd=IMPLS_DIR, env=self.env, stdout=subprocess.PIPE, stderr=errors
            )
            stdout = self._wait_driver(process, group)
        if process.returncode == 0 and not log.stat().st_size:
            log.unlink()
        if process.returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"driver {action} exited {process.returncode}: {' | '.join(tail)}")
        return json.loads(stdout.decode().strip().splitlines()[-1])

    def _wait_driver(self, process: subprocess.Popen, group: WorkerGroup | None) -> bytes:
        deadline = time.monotonic() + self.options.phase_timeout
        try:
            while True:
                try:
                    return process.communicate(timeout=0.5)[0]
                except subprocess.TimeoutExpired:
                    if group is not None:
                        group.check_running()
                    if time.monotonic() > deadline:
                        raise
        except BaseException:
            process.kill()
            process.communicate()
            raise


def partitioned(url: str, impl: Impl, on_cluster: bool = False) -> str:
    """``url`` with the partition count of ``impl`` (none for one partition)."""
    count = impl.cluster_partitions if on_cluster else impl.partitions
    return url if count == 1 else f"{url}?partitions={count}"


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
