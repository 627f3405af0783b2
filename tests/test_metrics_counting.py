"""How ``JobMetrics`` counts: its receivers add to plain values of their thread
(``spinach.contrib.job_tally``), folded into prometheus-client's metrics at each collection
of the registry (a scrape) and, under a supervisor, by a flusher thread and at disconnect.
The signals are sent here as a worker sends them, with injected clocks where times count."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from spinach import signals
from spinach.contrib import prometheus
from spinach.contrib.prometheus import CollectorRegistry, Histogram, JobMetrics
from spinach.job import Job, JobStatus
from tests.helpers import wait_until

NAMESPACE = "tallied"

#: Run times and queue waits on, just over and far past the buckets' bounds.
RUNS = [0.0, 0.004, 0.005, 0.0050001, 0.01, 0.99, 1.0, 299.9, 300.0, 300.5, 1e6]
WAITS = [-2.0, 0.004, 0.005, 0.0050001, 0.05, 1.0, 3599.0, 3600.0, 3600.5, 0.3, 1e7]

Snapshot = dict[tuple[str, frozenset], float]


def _job(task: str = "t") -> Job:
    job = Job(task, "q", 0.0, 0)  # due at 0: the wall clock given is its queue wait
    job.status = JobStatus.SUCCEEDED
    return job


def _run(job: Job) -> None:
    """Send the signals of a worker running ``job``."""
    signals.job_started.send(NAMESPACE, job=job)
    signals.job_finished.send(NAMESPACE, job=job)


def _snapshot(registry: CollectorRegistry, exclude: str = "_created") -> Snapshot:
    """Every sample of one collection of ``registry`` (but the creation times)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith(exclude)
    }


def _total(snapshot: Snapshot, name: str) -> float:
    return sum(v for (n, _), v in snapshot.items() if n == name)


@pytest.fixture
def metrics() -> Iterator[JobMetrics]:
    counting = JobMetrics(NAMESPACE).connect()
    yield counting
    counting.disconnect()


def test_the_histograms_equal_those_of_prometheus_client_observing_the_same_times():
    clock = iter([time for run in RUNS for time in (0.0, run)]).__next__  # start, end
    metrics = JobMetrics(NAMESPACE, clock=clock, wall=iter(WAITS).__next__).connect()
    try:
        for _ in RUNS:
            _run(_job())
    finally:
        metrics.disconnect()
    reference = CollectorRegistry()
    for name, buckets, times in (
        ("spinach_job_run_seconds", prometheus.RUN_TIME_BUCKETS, RUNS),
        ("spinach_job_queue_wait_seconds", prometheus.QUEUE_WAIT_BUCKETS, WAITS),
    ):
        histogram = Histogram(name, "", ("namespace", "task"), buckets=buckets,
                              registry=reference)  # fmt: skip
        for time in times:
            histogram.labels(NAMESPACE, "t").observe(max(time, 0.0))
    ours = _snapshot(metrics.registry)
    expected = _snapshot(reference)
    assert {k: v for k, v in ours.items() if k[0].startswith("spinach_job_")} == expected
    assert _total(ours, "spinach_jobs_succeeded_total") == len(RUNS)


def test_a_job_finished_by_another_thread_than_its_start_counts_once(metrics):
    job = _job()
    starter = threading.Thread(target=signals.job_started.send, args=(NAMESPACE,),
                               kwargs={"job": job})  # fmt: skip
    starter.start()
    starter.join()
    assert _total(_snapshot(metrics.registry), "spinach_worker_jobs_running") == 1
    signals.job_finished.send(NAMESPACE, job=job)  # from this thread: a tally of its own
    samples = _snapshot(metrics.registry)
    assert _total(samples, "spinach_worker_jobs_running") == 0
    assert _total(samples, "spinach_job_run_seconds_count") == 1
    assert _total(samples, "spinach_jobs_succeeded_total") == 1


def test_scrapes_while_threads_count_see_every_count_of_the_runs_they_see(metrics):
    threads, jobs = 4, 500
    counting_done = threading.Event()
    seen: list[Snapshot] = []

    def count() -> None:
        for n in range(jobs):
            job = _job(f"task{n % 3}")
            signals.job_started.send(NAMESPACE, job=job)
            if n % 5 == 0:  # an attempt to retry: counted as retried, not succeeded
                job.status = JobStatus.QUEUED
                signals.job_schedule_retry.send(NAMESPACE, job=job, err=ValueError())
            signals.job_finished.send(NAMESPACE, job=job)

    def scrape() -> None:
        while not counting_done.is_set():
            seen.append(_snapshot(metrics.registry))

    scraper = threading.Thread(target=scrape)
    counters = [threading.Thread(target=count) for _ in range(threads)]
    scraper.start()
    for thread in counters:
        thread.start()
    for thread in counters:
        thread.join()
    counting_done.set()
    scraper.join()
    final = _snapshot(metrics.registry)
    assert _total(final, "spinach_jobs_started_total") == threads * jobs
    assert _total(final, "spinach_jobs_retried_total") == threads * jobs // 5
    assert _total(final, "spinach_jobs_succeeded_total") == threads * jobs * 4 // 5
    for samples in [*seen, final]:
        runs = _total(samples, "spinach_job_run_seconds_count")
        outcomes = sum(
            _total(samples, f"spinach_jobs_{what}_total") for what in ("succeeded", "retried")
        )
        assert outcomes >= runs and _total(samples, "spinach_jobs_started_total") >= runs
        assert _total(samples, "spinach_job_queue_wait_seconds_count") >= runs


def test_the_counts_are_folded_in_at_collection_not_by_the_job_threads(metrics):
    _run(_job())
    assert _own(metrics.succeeded) == 0  # no scrape yet: not folded
    assert _total(_snapshot(metrics.registry), "spinach_jobs_succeeded_total") == 1


# -- under a supervisor: a flusher thread ----------------------------------------------------


@pytest.fixture
def supervised(monkeypatch, tmp_path) -> None:
    """As in a child of ``--processes`` (in this process, prometheus-client keeps its values
    in memory: what is checked is when they are written)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))


def _own(metric: prometheus.Counter | prometheus.Gauge) -> float:
    """The value of a metric as written so far (its own collection: no fold)."""
    samples = [s for family in metric.collect() for s in family.samples]
    return sum(s.value for s in samples if not s.name.endswith("_created"))


def test_a_supervised_child_flushes_its_counts_without_being_scraped(supervised, monkeypatch):
    monkeypatch.setattr(prometheus, "FLUSH_INTERVAL", 0.01)
    metrics = JobMetrics(NAMESPACE).connect()
    try:
        for _ in range(3):
            _run(_job())
        assert wait_until(lambda: _own(metrics.succeeded) == 3)
    finally:
        metrics.disconnect()
    assert not any(t.name == "spinach-metrics" for t in threading.enumerate())


def test_a_supervised_child_flushes_at_disconnect(supervised, monkeypatch):
    monkeypatch.setattr(prometheus, "FLUSH_INTERVAL", 3600.0)
    metrics = JobMetrics(NAMESPACE).connect()
    held = _job()
    signals.job_started.send(NAMESPACE, job=held)
    _run(_job())
    assert _own(metrics.succeeded) == 0  # the next flush is an hour away
    metrics.disconnect()
    assert (_own(metrics.succeeded), _own(metrics.started)) == (1, 2)
    assert _own(metrics.running) == 1  # the running gauge, written at each flush


def test_a_failing_flush_is_logged_and_the_next_one_runs(monkeypatch, caplog):
    monkeypatch.setattr(prometheus, "FLUSH_INTERVAL", 0.01)
    calls: list[int] = []

    def flush() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk full")

    flusher = prometheus._Flusher(flush)
    try:
        assert wait_until(lambda: len(calls) >= 2)
    finally:
        flusher.stop()
    assert "Could not flush the job metrics" in caplog.text and "disk full" in caplog.text


GREENLETS = """
from gevent import monkey; monkey.patch_all()
import gevent
from spinach.contrib.job_tally import Tallies
tallies = Tallies(2, 2)
greenlets = [gevent.spawn(tallies.mine) for _ in range(3)]
gevent.joinall(greenlets)
assert len({id(g.value) for g in greenlets}) == 1 == len(tallies.by_thread), tallies.by_thread
"""


def test_under_gevent_the_greenlets_of_a_thread_share_its_tally():
    """A greenlet per job (``-P gevent``) must not make a tally per job."""
    pytest.importorskip("gevent")
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", GREENLETS], cwd=root, check=True, timeout=60)
