"""Prometheus metrics: job counters and histograms of the workers, gauges of the broker.

Needs ``prometheus-client`` (``pip install 'spinach-queue[prometheus]'``), imported only when
this module is. Three parts:

- ``JobMetrics`` counts what the engine's signals report in this process: jobs enqueued,
  started, succeeded, failed, retried, dead-lettered and revoked (the last by the Celery
  facade only) per namespace, task and queue; histograms of run time and of queue wait
  (from when the job was due, i.e. enqueued or its delay or retry over, to its start) per
  task; a gauge of the jobs running in this worker. A failing receiver is logged by the
  signal, never breaks a job. The receivers run in the job threads, so they only add to
  plain values of their thread (``spinach.contrib.job_tally``); those are added to the
  prometheus-client metrics when the registry is collected (each scrape), so every scrape
  is exact, and a worker process under a supervisor flushes them every ``FLUSH_INTERVAL``
  seconds and when it stops.
- ``serve`` (``Engine.serve_metrics``, ``spinach worker --metrics-port``) exposes them over
  HTTP at ``/metrics``. Under ``--processes`` the children write them to a directory of the
  run (prometheus-client's multiprocess mode) and the supervisor alone serves the sum:
  ``MultiprocessMetrics``. The sum of a child that died or was replaced stays in the
  counters and histograms; its running-jobs gauge is dropped.
- ``BrokerCollector(broker)`` reads broker-wide gauges (queue depth, future jobs, running
  jobs, live workers, dead letters) at each scrape; register it in one process (a
  dashboard, an exporter), not in every worker: each scrape costs broker round trips.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import shutil
import tempfile
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .. import signals
from ..forks import reset_after_fork
from ..job import Job, JobStatus
from ..supervisor import METRICS_DIR_VARIABLE
from .job_tally import (
    DEAD_LETTERED,
    ENQUEUED,
    EVENTS,
    FAILED,
    RETRIED,
    REVOKED,
    STARTED,
    SUCCEEDED,
    Deltas,
    Key,
    Tallies,
)

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.core import GaugeMetricFamily, Metric
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "spinach.contrib.prometheus needs prometheus-client: "
        "pip install 'spinach-queue[prometheus]'"
    ) from exc

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ..brokers.base import Broker
    from ..engine import Engine

#: Upper bounds (seconds) of the run-time histogram buckets. More buckets give finer
#: quantiles, each costs one time series per task.
RUN_TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

#: Upper bounds (seconds) of the queue-wait histogram buckets (same trade-off).
QUEUE_WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600)

#: Address the metrics server listens on. "0.0.0.0" is every interface (Prometheus scrapes
#: it from another host); "127.0.0.1" keeps it local.
DEFAULT_ADDRESS = "0.0.0.0"


#: Seconds between the flushes of a worker process's counts to the files its supervisor
#: serves (``--processes``; also flushed when it stops): the supervisor's ``/metrics`` lags
#: the jobs by up to this much; shorter costs the process more CPU (a pass over its series,
#: a file write per changed value) for fresher figures. Prometheus scrapes every 15 s or so.
FLUSH_INTERVAL = 1.0

#: ``JobStatus.SUCCEEDED``, read per job: an enum member's lookup costs 0.2-0.5 us on 3.11.
_SUCCEEDED = JobStatus.SUCCEEDED

_JOB_SIGNALS = ("after_schedule", "job_started", "job_finished", "job_failed",
                "job_schedule_retry", "job_dead_lettered")  # fmt: skip


class JobMetrics:
    """The job metrics of this process, fed by the engine's signals once ``connect``-ed.

    ``namespace`` restricts them to one engine's (default: every namespace). Metrics go to
    ``registry`` (default: a registry of their own, which ``serve`` exposes). The receivers
    only count into their thread's tally (``spinach.contrib.job_tally``): the counts reach
    the prometheus-client metrics at each collection of ``registry`` (a scrape), and under a
    supervisor every ``FLUSH_INTERVAL`` seconds and at ``disconnect``. ``clock`` (run times)
    and ``wall`` (queue waits, against the jobs' due times) are for tests.
    """

    def __init__(
        self, namespace: str | None = None, registry: CollectorRegistry | None = None, *,
        clock: Callable[[], float] = time.perf_counter, wall: Callable[[], float] = time.time,
    ):  # fmt: skip
        self.namespace = namespace
        self.registry = CollectorRegistry() if registry is None else registry
        self._clock, self._wall = clock, wall
        self._run_bounds, self._wait_bounds = RUN_TIME_BUCKETS, QUEUE_WAIT_BUCKETS
        self._tallies = Tallies(len(RUN_TIME_BUCKETS) + 1, len(QUEUE_WAIT_BUCKETS) + 1)
        self._by_thread, self._thread_id = self._tallies.by_thread, self._tallies.thread_id
        #: Under a supervisor the running gauge is written at each flush (summed from the
        #: children's files); else it is read from the tallies at each scrape.
        self._multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self._revoked: set[int] = set()  # id(job) of revoked jobs, not counted as succeeded
        self._cache: dict[Key, _Series] = {}  # the fold's: one series' labelled metrics
        self._folding = threading.Lock()
        self._flusher: _Flusher | None = None
        self._build()
        self.registry.register(_JobCollector(self))
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: a parent's thread may have been folding at the fork."""
        self._folding = threading.Lock()

    def _build(self) -> None:
        """The metrics, in no registry: ``_JobCollector`` folds the counts in, then reads them."""
        labels = ("namespace", "task", "queue")

        def counter(what: str, doc: str) -> Counter:
            return Counter(f"spinach_jobs_{what}", doc, labels, registry=None)

        self.enqueued = counter("enqueued", "Jobs enqueued (scheduled) by this process.")
        self.started = counter("started", "Job attempts started.")
        self.succeeded = counter("succeeded", "Jobs that succeeded.")
        self.failed = counter("failed", "Jobs that failed for good.")
        self.retried = counter("retried", "Failed attempts scheduled for a retry.")
        self.dead_lettered = counter("dead_lettered", "Fetched jobs set aside as dead letters.")
        self.revoked = counter("revoked", "Jobs discarded as revoked or expired (Celery facade).")
        self.run_time = Histogram(
            "spinach_job_run_seconds", "Run time of each job attempt.",
            ("namespace", "task"), buckets=RUN_TIME_BUCKETS, registry=None,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "spinach_job_queue_wait_seconds", "From when a job was due to its start.",
            ("namespace", "task"), buckets=QUEUE_WAIT_BUCKETS, registry=None,
        )  # fmt: skip
        self.running = Gauge(
            "spinach_worker_jobs_running", "Jobs running in this worker (all its processes).",
            ("namespace",), registry=None, multiprocess_mode="livesum",
        )  # fmt: skip

    def metrics(self) -> list[Counter | Histogram | Gauge]:
        """Every metric, in the order of ``job_tally.EVENTS`` first."""
        return [getattr(self, what) for what in EVENTS] + [
            self.run_time, self.queue_wait, self.running
        ]  # fmt: skip

    # -- wiring ------------------------------------------------------------------------

    def connect(self) -> JobMetrics:
        """Start counting: connect to the engine's signals (strongly); returns self. Under a
        supervisor, also start flushing to its files."""
        sender = signals.ANY if self.namespace is None else self.namespace
        for name in _JOB_SIGNALS:
            getattr(signals, name).connect(getattr(self, f"_on_{name}"), sender=sender, weak=False)
        if self._multiprocess and self._flusher is None:
            self._flusher = _Flusher(self.fold)
        return self

    def disconnect(self) -> None:
        """Stop counting (under a supervisor: flush what was counted, stop flushing)."""
        for name in _JOB_SIGNALS:
            getattr(signals, name).disconnect(getattr(self, f"_on_{name}"))
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.stop()

    def job_revoked(self, namespace: str, job: Job) -> None:
        """Count ``job`` as revoked (the facade discards it; the engine sees a success)."""
        self._revoked.add(id(job))
        self._count(namespace, job, REVOKED)

    # -- receivers (in the job threads: plain Python values of the thread's tally) ---------
    # Written for speed: the calls they save (``Tallies.mine``, ``Tally.counts``) cost
    # 0.1-0.3 us each, a tenth of the receivers' time.

    def _on_after_schedule(self, namespace: str, jobs: list[Job], err: Any = None) -> None:
        if err is None:
            tally = self._tallies.mine()
            for job in jobs:
                tally.counts((namespace, job.task_name, job.queue)).events[ENQUEUED] += 1

    def _on_job_started(self, namespace: str, job: Job, **kwargs: Any) -> None:
        wait = self._wall() - job.at_timestamp
        if wait < 0.0:
            wait = 0.0
        tally = self._by_thread.get(self._thread_id()) or self._tallies.mine()
        key = (namespace, job.task_name, job.queue)
        counts = tally.series.get(key) or tally.counts(key)
        counts.events[STARTED] += 1
        counts.wait[bisect_left(self._wait_bounds, wait)] += 1
        counts.wait_sum += wait
        tally.running[id(job)] = (self._clock(), counts)

    def _on_job_finished(self, namespace: str, job: Job, **kwargs: Any) -> None:
        end = self._clock()
        tally = self._by_thread.get(self._thread_id()) or self._tallies.mine()
        started = tally.running.pop(id(job), None)
        if started is None:  # started by another thread, or before counting began
            counts = tally.counts((namespace, job.task_name, job.queue))
            start = self._tallies.pop_started(id(job))
        else:
            start, counts = started
        if self._revoked and id(job) in self._revoked:
            self._revoked.discard(id(job))
        elif job.status is _SUCCEEDED:
            counts.events[SUCCEEDED] += 1
        if start is not None:  # last, as SeriesCounts.take expects
            run = end - start
            counts.run[bisect_left(self._run_bounds, run)] += 1
            counts.run_sum += run

    def _count(self, namespace: str, job: Job, event: int) -> None:
        self._tallies.mine().counts((namespace, job.task_name, job.queue)).events[event] += 1

    def _on_job_failed(self, namespace: str, job: Job, **kwargs: Any) -> None:
        self._count(namespace, job, FAILED)

    def _on_job_schedule_retry(self, namespace: str, job: Job, **kwargs: Any) -> None:
        self._count(namespace, job, RETRIED)

    def _on_job_dead_lettered(self, namespace: str, job: Job, **kwargs: Any) -> None:
        self._count(namespace, job, DEAD_LETTERED)

    # -- folding (at a scrape, or a flush: off the job threads) ------------------------

    def fold(self) -> None:
        """Add what the receivers counted since the previous fold to the metrics."""
        with self._folding:
            self._fold_locked()

    def _collect(self) -> list[Metric]:
        """Fold, then read every metric, with no other fold in between (two scrapes at once
        each see the same counts in every metric)."""
        with self._folding:
            self._fold_locked()
            return [family for metric in self.metrics() for family in metric.collect()]

    def _fold_locked(self) -> None:
        """``fold``, the caller holding ``_folding``."""
        for counts in self._tallies.every_series():
            deltas = counts.take()
            if deltas is not None:
                self._series(counts.key).add(deltas)
        if self._multiprocess:
            running = self._tallies.running()
            for namespace in {key[0] for key in self._cache}:
                self.running.labels(namespace).set(running.get(namespace, 0))

    def _series(self, key: Key) -> _Series:
        series = self._cache.get(key)
        if series is None:
            series = self._cache[key] = _Series(self, *key)
        return series

    def _running_in(self, namespace: str) -> int:
        """Jobs of ``namespace`` running now (the gauge's value at a scrape)."""
        return self._tallies.running().get(namespace, 0)


class _Series:
    """The labelled metrics of ``JobMetrics`` for one namespace, task and queue."""

    __slots__ = ("events", "queue_wait", "run_time")

    def __init__(self, metrics: JobMetrics, namespace: str, task: str, queue: str):
        self.events = [getattr(metrics, what).labels(namespace, task, queue) for what in EVENTS]
        self.run_time = metrics.run_time.labels(namespace, task)
        self.queue_wait = metrics.queue_wait.labels(namespace, task)
        running = metrics.running.labels(namespace)
        if not metrics._multiprocess:
            running.set_function(functools.partial(metrics._running_in, namespace))

    def add(self, deltas: Deltas) -> None:
        """Add one thread's deltas: the run times last, so that a reader of the values that
        reads the run times first sees every count of the attempts whose run time it sees
        (``SeriesCounts.take``; ``MultiprocessMetrics`` reads the histograms' files first)."""
        for counter, delta in zip(self.events, deltas.events, strict=True):
            if delta:
                counter.inc(delta)
        _observed(self.queue_wait, deltas.wait, deltas.wait_sum)
        _observed(self.run_time, deltas.run, deltas.run_sum)


def _observed(histogram: Histogram, buckets: list[int], total: float) -> None:
    """Add to ``histogram`` (a labelled child) observations counted per bucket, of sum
    ``total``. prometheus-client has no public call for it (``observe`` takes one value):
    this writes its bucket and sum values as ``observe`` does, which
    test_metrics.py's comparison with ``observe`` checks at each upgrade."""
    if total:
        histogram._sum.inc(total)
    for value, count in zip(histogram._buckets, buckets, strict=True):
        if count:
            value.inc(count)


class _JobCollector:
    """The job metrics in a registry: each collection folds the tallies in first."""

    def __init__(self, metrics: JobMetrics):
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return [family for metric in self._metrics.metrics() for family in metric.describe()]

    def collect(self) -> list[Metric]:
        return self._metrics._collect()


class _Flusher:
    """Calls ``flush`` every ``FLUSH_INTERVAL`` seconds in a daemon thread, and once more
    at ``stop``."""

    def __init__(self, flush: Callable[[], None]):
        self._flush = flush
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spinach-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(FLUSH_INTERVAL):
            self._flush_logged()

    def _flush_logged(self) -> None:
        try:
            self._flush()
        except Exception:  # a full disk must not stop the next flushes
            logger.exception("Could not flush the job metrics")

    def stop(self) -> None:
        """Flush for the last time and stop."""
        self._stopping.set()
        self._thread.join()
        self._flush_logged()


# -- serving -------------------------------------------------------------------------------


class MetricsServer:
    """An HTTP server of ``/metrics`` in a daemon thread; ``close`` stops it."""

    def __init__(self, registry: CollectorRegistry, port: int, addr: str = DEFAULT_ADDRESS):
        self.registry = registry
        self._server, self._thread = prometheus_client.start_http_server(
            port, addr=addr, registry=registry
        )
        self.port: int = self._server.server_port  #: the port bound (``port=0``: a free one)
        self.on_close: list[Any] = []  #: callables run by ``close`` after the server stopped

    def close(self) -> None:
        """Stop serving and wait for the server thread (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        callbacks, self.on_close = self.on_close, []
        for callback in callbacks:
            callback()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    engine: Engine | None, port: int, addr: str = DEFAULT_ADDRESS, *, broker: bool = False
) -> MetricsServer:
    """Count the jobs of ``engine`` (every namespace if None) and serve them on ``port``.

    ``broker`` also serves the ``BrokerCollector`` of the engine's broker. ``close`` the
    server to stop both serving and counting.
    """
    metrics = JobMetrics(None if engine is None else engine.namespace).connect()
    if broker and engine is not None:
        metrics.registry.register(BrokerCollector(engine.broker))
    try:
        server = MetricsServer(metrics.registry, port, addr)
    except BaseException:
        metrics.disconnect()
        raise
    server.on_close.append(metrics.disconnect)
    return server


def record_for_supervisor(namespace: str | None = None) -> JobMetrics | None:
    """In a supervised child: count the jobs for the supervisor's ``/metrics`` (the
    ``METRICS_DIR_VARIABLE`` of the environment says where); None when not asked."""
    if not os.environ.get(METRICS_DIR_VARIABLE):
        return None
    return JobMetrics(namespace).connect()


class MultiprocessMetrics:
    """A supervisor's metrics: a directory of the run its children write their metrics to
    (pass ``environment`` to them and call ``process_exited`` with each dead child's pid),
    served summed on ``port``, from ``start`` to ``close`` (or as a context manager).

    Chosen over the supervisor collecting from its children: counters of a child that died
    survive it in its files, and a scrape never waits on a busy child.
    """

    def __init__(self, port: int, addr: str = DEFAULT_ADDRESS):
        self.port = port
        self.addr = addr
        self.path = ""
        self.server: MetricsServer | None = None

    @property
    def environment(self) -> dict[str, str]:
        """The environment variables of each child (prometheus-client reads its own at
        import, ours tells the worker to record its metrics)."""
        return {METRICS_DIR_VARIABLE: self.path, "PROMETHEUS_MULTIPROC_DIR": self.path}

    def __enter__(self) -> MultiprocessMetrics:
        return self.start()

    def start(self) -> MultiprocessMetrics:
        """Make the directory and serve it; returns self."""
        self.path = tempfile.mkdtemp(prefix="spinach-metrics-")
        registry = CollectorRegistry()
        registry.register(_HistogramsFirst(self.path))
        try:
            self.server = MetricsServer(registry, self.port, self.addr)
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        return self

    def process_exited(self, pid: int) -> None:
        """Drop the live gauges of a child that exited (its counters stay in the sum)."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self.path)

    def close(self) -> None:
        """Stop serving and remove the directory."""
        if self.server is not None:
            self.server.close()
        if self.path:
            shutil.rmtree(self.path, ignore_errors=True)

    def __exit__(self, *exc: object) -> None:
        self.close()


class _HistogramsFirst:
    """The children's metrics, summed from their files (prometheus-client's
    ``MultiProcessCollector``), the histograms' files read before the others: a child
    writes the run times after the other counts (``_Series.add``), so a scrape sees every
    count of the attempts whose run time it sees."""

    def __init__(self, path: str):
        self.path = path

    def collect(self) -> Iterable[Metric]:
        from prometheus_client import multiprocess

        files = glob.glob(os.path.join(self.path, "*.db"))
        files.sort(key=lambda name: not os.path.basename(name).startswith("histogram_"))
        return multiprocess.MultiProcessCollector.merge(files, accumulate=True)


# -- broker-wide gauges --------------------------------------------------------------------


class BrokerCollector:
    """Gauges of a broker's namespace, read at each scrape: ``registry.register(it)``.

    Each scrape reads the queues' lengths, the running jobs and the workers, and counts the
    future jobs and the dead letters without reading them (the total of an empty
    ``scheduled_page``, ``dead_letter_count``: on Redis one ZCARD each), so its cost does
    not grow with them.
    A queue seen once is reported at 0 when it empties again.
    """

    def __init__(self, broker: Broker):
        self.broker = broker
        self._queues: set[str] = set()
        self._lock = threading.Lock()
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: a parent's thread may have been scraping at the fork."""
        self._lock = threading.Lock()

    def describe(self) -> list[GaugeMetricFamily]:
        """The families without reading the broker (registering costs no round trip)."""
        return [family for family, _ in self._families()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        broker = self.broker
        lengths = broker.queue_lengths()
        with self._lock:
            self._queues.update(lengths)
            queues = sorted(self._queues)
        (depth, _), *others = self._families()
        for queue in queues:
            depth.add_metric([broker.namespace, queue], lengths.get(queue, 0))
        yield depth
        for family, read in others:
            family.add_metric([broker.namespace], read())
            yield family

    def _families(self) -> list[tuple[GaugeMetricFamily, Any]]:
        broker = self.broker

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ("namespace",)) -> Any:
            return GaugeMetricFamily(name, doc, labels=labels)

        return [
            (gauge("spinach_queue_jobs", "Jobs waiting in each queue.",
                   ("namespace", "queue")), None),
            (gauge("spinach_future_jobs", "Jobs due in the future (delayed or retrying)."),
             broker.scheduled_count),
            (gauge("spinach_running_jobs", "Jobs running on any worker."),
             lambda: sum(len(jobs) for jobs in broker.running_jobs().values())),
            (gauge("spinach_workers_alive", "Live worker processes."),
             lambda: len(broker.workers())),
            (gauge("spinach_dead_letters", "Payloads set aside as dead letters."),
             broker.dead_letter_count),
        ]  # fmt: skip
