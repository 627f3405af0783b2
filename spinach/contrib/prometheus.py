"""Prometheus metrics: job counters and histograms of the workers, gauges of the broker.

Needs ``prometheus-client`` (``pip install 'spinach-queue[prometheus]'``), imported only when
this module is. Three parts:

- ``JobMetrics`` counts what the engine's signals report in this process: jobs enqueued,
  started, succeeded, failed, retried, dead-lettered and revoked (the last by the Celery
  facade only) per namespace, task and queue; histograms of run time and of queue wait
  (from when the job was due, i.e. enqueued or its delay or retry over, to its start) per
  task; a gauge of the jobs running in this worker. A failing receiver is logged by the
  signal, never breaks a job.
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
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import signals
from ..job import Job, JobStatus
from ..supervisor import METRICS_DIR_VARIABLE

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.core import GaugeMetricFamily
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "spinach.contrib.prometheus needs prometheus-client: "
        "pip install 'spinach-queue[prometheus]'"
    ) from exc

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


_JOB_SIGNALS = ("after_schedule", "job_started", "job_finished", "job_failed",
                "job_schedule_retry", "job_dead_lettered")  # fmt: skip


class JobMetrics:
    """The job metrics of this process, fed by the engine's signals once ``connect``-ed.

    ``namespace`` restricts them to one engine's (default: every namespace). Metrics go to
    ``registry`` (default: a registry of their own, which ``serve`` exposes).
    """

    def __init__(self, namespace: str | None = None, registry: CollectorRegistry | None = None):
        self.namespace = namespace
        self.registry = CollectorRegistry() if registry is None else registry
        #: id(job) -> its start, namespace and series (the receivers look it up once per job)
        self._started: dict[int, tuple[float, str, _Series]] = {}
        #: Under a supervisor the running gauge is counted per job (summed from files);
        #: else it is read at each scrape from ``_started``, costing the jobs nothing.
        self._multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self._revoked: set[int] = set()  # id(job) of revoked jobs, not counted as succeeded
        self._cache: dict[tuple[str, str, str], _Series] = {}
        self._build(self.registry)

    def _build(self, registry: CollectorRegistry) -> None:
        labels = ("namespace", "task", "queue")

        def counter(what: str, doc: str) -> Counter:
            return Counter(f"spinach_jobs_{what}", doc, labels, registry=registry)

        self.enqueued = counter("enqueued", "Jobs enqueued (scheduled) by this process.")
        self.started = counter("started", "Job attempts started.")
        self.succeeded = counter("succeeded", "Jobs that succeeded.")
        self.failed = counter("failed", "Jobs that failed for good.")
        self.retried = counter("retried", "Failed attempts scheduled for a retry.")
        self.dead_lettered = counter("dead_lettered", "Fetched jobs set aside as dead letters.")
        self.revoked = counter("revoked", "Jobs discarded as revoked or expired (Celery facade).")
        self.run_time = Histogram(
            "spinach_job_run_seconds", "Run time of each job attempt.",
            ("namespace", "task"), buckets=RUN_TIME_BUCKETS, registry=registry,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "spinach_job_queue_wait_seconds", "From when a job was due to its start.",
            ("namespace", "task"), buckets=QUEUE_WAIT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.running = Gauge(
            "spinach_worker_jobs_running", "Jobs running in this worker (all its processes).",
            ("namespace",), registry=registry, multiprocess_mode="livesum",
        )  # fmt: skip

    # -- wiring ------------------------------------------------------------------------

    def connect(self) -> JobMetrics:
        """Start counting: connect to the engine's signals (strongly); returns self."""
        sender = signals.ANY if self.namespace is None else self.namespace
        for name in _JOB_SIGNALS:
            getattr(signals, name).connect(getattr(self, f"_on_{name}"), sender=sender, weak=False)
        return self

    def disconnect(self) -> None:
        """Stop counting."""
        for name in _JOB_SIGNALS:
            getattr(signals, name).disconnect(getattr(self, f"_on_{name}"))

    def job_revoked(self, namespace: str, job: Job) -> None:
        """Count ``job`` as revoked (the facade discards it; the engine sees a success)."""
        self._revoked.add(id(job))
        self._series(namespace, job).revoked.inc()

    def _series(self, namespace: str, job: Job) -> _Series:
        """The labelled metrics of the job's namespace, task and queue (built once: the
        receivers run for every job)."""
        key = (namespace, job.task_name, job.queue)
        series = self._cache.get(key)
        if series is None:  # two threads may build it: the same children, no harm
            series = self._cache[key] = _Series(self, *key)
        return series

    def _running_in(self, namespace: str) -> int:
        """Jobs of ``namespace`` running now (the gauge's value at a scrape)."""
        return sum(1 for _, of, _ in list(self._started.values()) if of == namespace)

    # -- receivers ---------------------------------------------------------------------

    def _on_after_schedule(self, namespace: str, jobs: list[Job], err: Any = None) -> None:
        if err is None:
            for job in jobs:
                self._series(namespace, job).enqueued.inc()

    def _on_job_started(self, namespace: str, job: Job, **kwargs: Any) -> None:
        series = self._series(namespace, job)
        self._started[id(job)] = (time.perf_counter(), namespace, series)
        series.started.inc()
        wait = time.time() - job.at_timestamp
        series.queue_wait.observe(wait if wait > 0.0 else 0.0)
        if self._multiprocess:
            series.running.inc()

    def _on_job_finished(self, namespace: str, job: Job, **kwargs: Any) -> None:
        started = self._started.pop(id(job), None)
        if started is None:  # counting began during the job
            series = self._series(namespace, job)
        else:
            series = started[2]
            series.run_time.observe(time.perf_counter() - started[0])
            if self._multiprocess:
                series.running.dec()
        revoked = bool(self._revoked) and id(job) in self._revoked
        if revoked:
            self._revoked.discard(id(job))
        elif job.status is JobStatus.SUCCEEDED:
            series.succeeded.inc()

    def _on_job_failed(self, namespace: str, job: Job, **kwargs: Any) -> None:
        self._series(namespace, job).failed.inc()

    def _on_job_schedule_retry(self, namespace: str, job: Job, **kwargs: Any) -> None:
        self._series(namespace, job).retried.inc()

    def _on_job_dead_lettered(self, namespace: str, job: Job, **kwargs: Any) -> None:
        self._series(namespace, job).dead_lettered.inc()


class _Series:
    """The labelled children of ``JobMetrics`` for one namespace, task and queue."""

    __slots__ = ("dead_lettered", "enqueued", "failed", "queue_wait", "retried", "revoked",
                 "run_time", "running", "started", "succeeded")  # fmt: skip

    def __init__(self, metrics: JobMetrics, namespace: str, task: str, queue: str):
        labels = (namespace, task, queue)
        self.enqueued = metrics.enqueued.labels(*labels)
        self.started = metrics.started.labels(*labels)
        self.succeeded = metrics.succeeded.labels(*labels)
        self.failed = metrics.failed.labels(*labels)
        self.retried = metrics.retried.labels(*labels)
        self.dead_lettered = metrics.dead_lettered.labels(*labels)
        self.revoked = metrics.revoked.labels(*labels)
        self.run_time = metrics.run_time.labels(namespace, task)
        self.queue_wait = metrics.queue_wait.labels(namespace, task)
        self.running = metrics.running.labels(namespace)
        if not metrics._multiprocess:
            self.running.set_function(functools.partial(metrics._running_in, namespace))


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
        from prometheus_client import multiprocess

        self.path = tempfile.mkdtemp(prefix="spinach-metrics-")
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.path)
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
             lambda: broker.scheduled_page(0, 0)[1]),
            (gauge("spinach_running_jobs", "Jobs running on any worker."),
             lambda: sum(len(jobs) for jobs in broker.running_jobs().values())),
            (gauge("spinach_workers_alive", "Live worker processes."),
             lambda: len(broker.workers())),
            (gauge("spinach_dead_letters", "Payloads set aside as dead letters."),
             broker.dead_letter_count),
        ]  # fmt: skip
