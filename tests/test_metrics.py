"""Prometheus metrics (``spinach.contrib.prometheus``): counted from the engine's signals,
scraped over HTTP from in-process workers and from ``spinach worker --processes 2``."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from spinach import Engine, MemoryBroker, RedisBroker
from spinach.brokers.base import WorkerInfo
from spinach.contrib import prometheus
from spinach.exc import RetryException
from spinach.job import Job
from tests.helpers import SignalRecorder
from tests.metrics_support import Samples, free_port, scrape, scrape_until, value
from tests.support.processes import LogReader

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0
NAMESPACE = "metered"
URL_VARIABLE = "METRICS_TEST_REDIS_URL"

#: Each known outcome: ok succeeds, fail fails for good, flaky fails once then succeeds.
OK, FAIL, FLAKY = 4, 2, 3

APP = f'''"""ok succeeds, fail fails for good, flaky fails its first attempt then succeeds."""
import os
from datetime import datetime, timezone

import redis

from spinach import Engine, RedisBroker
from spinach.exc import RetryException

client = redis.Redis.from_url(os.environ["{URL_VARIABLE}"])
spin = Engine(RedisBroker(os.environ["{URL_VARIABLE}"]), namespace="{NAMESPACE}")


@spin.task(name="ok")
def ok(n):
    return n


@spin.task(name="fail", max_retries=0)
def fail(n):
    raise ValueError(f"fail {{n}}")


@spin.task(name="flaky", max_retries=1)
def flaky(n):
    if client.incr(f"attempts-{{n}}") == 1:
        raise RetryException("first attempt", at=datetime.now(timezone.utc))
'''


# -- in process ----------------------------------------------------------------------------


@pytest.fixture
def spin() -> Iterator[Engine]:
    engine = Engine(MemoryBroker(), namespace=NAMESPACE)
    attempts: dict[int, int] = {}

    @engine.task(name="ok")
    def ok(n: int) -> int:
        return n

    @engine.task(name="fail", max_retries=0)
    def fail(n: int) -> None:
        raise ValueError(f"fail {n}")

    @engine.task(name="flaky", max_retries=1)
    def flaky(n: int) -> None:
        attempts[n] = attempts.get(n, 0) + 1
        if attempts[n] == 1:
            raise RetryException("first attempt", at=datetime.now(timezone.utc))

    yield engine
    if engine.running:
        engine.stop_workers()


def _schedule_known_jobs(engine: Engine) -> None:
    for n in range(OK):
        engine.schedule("ok", n)
    for n in range(FAIL):
        engine.schedule("fail", n)
    for n in range(FLAKY):
        engine.schedule("flaky", n)


def _assert_known_counts(samples: Samples) -> None:
    def count(what: str, task: str) -> float:
        return value(samples, f"spinach_jobs_{what}_total", task=task, namespace=NAMESPACE)

    assert (count("succeeded", "ok"), count("succeeded", "flaky")) == (OK, FLAKY)
    assert (count("failed", "fail"), count("failed", "ok")) == (FAIL, 0)
    assert (count("retried", "flaky"), count("retried", "ok")) == (FLAKY, 0)
    assert [count("started", t) for t in ("ok", "fail", "flaky")] == [OK, FAIL, 2 * FLAKY]
    for task, runs in (("ok", OK), ("fail", FAIL), ("flaky", 2 * FLAKY)):
        assert value(samples, "spinach_job_run_seconds_count", task=task) == runs
        assert value(samples, "spinach_job_queue_wait_seconds_count", task=task) == runs
        bucket = value(samples, "spinach_job_run_seconds_bucket", task=task, le="+Inf")
        assert bucket == runs


def test_engine_serves_the_counts_of_its_jobs(spin):
    recorder = SignalRecorder(NAMESPACE)
    server = spin.serve_metrics(0, "127.0.0.1")
    try:
        _schedule_known_jobs(spin)
        spin.start_workers(number=2, block=False, stop_when_queue_empty=True)
        assert spin.wait_until_stopped(TIMEOUT)
        recorder.wait_for_count("job_finished", OK + FAIL + 2 * FLAKY)
        samples = scrape(server.port)
    finally:
        server.close()
        recorder.close()
    _assert_known_counts(samples)
    enqueued = {t: value(samples, "spinach_jobs_enqueued_total", task=t) for t in ("ok", "fail")}
    assert enqueued == {"ok": OK, "fail": FAIL}  # the retries are not enqueues
    assert value(samples, "spinach_worker_jobs_running") == 0


def test_the_running_gauge_counts_the_jobs_running_now(spin):
    release = threading.Event()

    @spin.task(name="hold")
    def hold() -> None:
        release.wait(TIMEOUT)

    recorder = SignalRecorder(NAMESPACE)
    server = spin.serve_metrics(0, "127.0.0.1")
    try:
        spin.schedule(hold)
        spin.start_workers(number=2, block=False, stop_when_queue_empty=True)
        recorder.wait_for_count("job_started", 1)
        assert value(scrape(server.port), "spinach_worker_jobs_running") == 1
        release.set()
        assert spin.wait_until_stopped(TIMEOUT)
        assert value(scrape(server.port), "spinach_worker_jobs_running") == 0
    finally:
        release.set()
        server.close()
        recorder.close()


def test_a_closed_server_stops_counting(spin):
    server = spin.serve_metrics(0, "127.0.0.1")
    metrics_registry = server.registry
    server.close()
    spin.schedule("ok", 1)
    names = {m.name for m in metrics_registry.collect()}
    assert "spinach_jobs_enqueued" in names
    enqueued = metrics_registry.get_sample_value(
        "spinach_jobs_enqueued_total", {"namespace": NAMESPACE, "task": "ok", "queue": "spinach"}
    )
    assert enqueued is None  # nothing counted after close


def test_a_failing_hook_is_logged_and_the_job_still_succeeds(spin, caplog):
    class Broken(prometheus.JobMetrics):
        def _on_job_started(self, namespace: str, job: Job, **kwargs: object) -> None:
            raise RuntimeError("broken hook")

    metrics = Broken(NAMESPACE).connect()
    recorder = SignalRecorder(NAMESPACE)
    try:
        with caplog.at_level(logging.ERROR, logger="spinach.signals"):
            spin.schedule("ok", 1)
            spin.start_workers(number=1, block=False, stop_when_queue_empty=True)
            assert spin.wait_until_stopped(TIMEOUT)
        (finished,) = recorder.wait_for_count("job_finished", 1)
    finally:
        metrics.disconnect()
        recorder.close()
    assert finished.status == "SUCCEEDED"
    assert "broken hook" in caplog.text and "job_started" in caplog.text
    succeeded = metrics.registry.get_sample_value(
        "spinach_jobs_succeeded_total", {"namespace": NAMESPACE, "task": "ok", "queue": "spinach"}
    )
    assert succeeded == 1  # the other hooks still count


# -- the broker collector ------------------------------------------------------------------


def test_broker_collector_gauges_equal_the_broker_state(redis_url):
    broker = RedisBroker(redis_url)
    engine = Engine(broker, namespace="gauged")

    @engine.task(name="t", queue="high")
    def t() -> None: ...

    try:
        for _ in range(3):
            engine.schedule(t)
        engine.schedule_jobs([engine.build_job(t, queue="low")])
        engine.schedule_at(t, datetime(2999, 1, 1, tzinfo=timezone.utc))
        broker.register_worker(WorkerInfo(id=broker.worker_id, queues=["high"], threads=1))
        engine.schedule_jobs([engine.build_job(t, queue="doomed")])
        (doomed,) = broker.get_jobs_from_queue("doomed", 1)
        broker.dead_letter(doomed, "a test's dead letter")
        registry = prometheus.CollectorRegistry()
        registry.register(prometheus.BrokerCollector(broker))
        labels = {"namespace": "gauged"}

        def gauge(name: str, **more: str) -> float | None:
            return registry.get_sample_value(name, {**labels, **more})

        assert broker.queue_lengths() == {"high": 3, "low": 1}
        depths = [gauge("spinach_queue_jobs", queue=q) for q in ("high", "low")]
        assert depths == [3, 1]
        assert gauge("spinach_future_jobs") == 1
        assert gauge("spinach_workers_alive") == 1
        assert gauge("spinach_dead_letters") == 1
        assert gauge("spinach_running_jobs") == 0
        broker.get_jobs_from_queue("high", 2)  # two of them running now
        assert gauge("spinach_running_jobs") == 2
        assert gauge("spinach_queue_jobs", queue="high") == 1
        broker.get_jobs_from_queue("low", 1)  # empty now: still reported, at 0
        assert gauge("spinach_queue_jobs", queue="low") == 0
    finally:
        broker.flush()
        broker.stop()


class CountingOnlyBroker(MemoryBroker):
    """A memory broker whose future jobs and dead letters may be counted, never listed."""

    def scheduled_jobs(self):
        raise AssertionError("a scrape listed the future jobs")

    def list_dead_letters(self):
        raise AssertionError("a scrape listed the dead letters")


def test_a_scrape_counts_future_jobs_and_dead_letters_without_listing_them():
    broker = CountingOnlyBroker()
    broker.set_namespace("counted")
    later = broker.now() + 3600
    broker.enqueue_jobs([Job("t", "q", later, 0, [i]) for i in range(3)])
    broker.register_worker(WorkerInfo(id=broker.worker_id, queues=["q"], threads=1))
    broker.enqueue_jobs([Job("t", "q", broker.now(), 0)])
    (doomed,) = broker.get_jobs_from_queue("q", 1)
    broker.dead_letter(doomed, "a test's dead letter")
    registry = prometheus.CollectorRegistry()
    registry.register(prometheus.BrokerCollector(broker))
    labels = {"namespace": "counted"}
    assert registry.get_sample_value("spinach_future_jobs", labels) == 3
    assert registry.get_sample_value("spinach_dead_letters", labels) == 1


def test_serve_metrics_with_broker_adds_the_broker_gauges(spin):
    with spin.serve_metrics(0, "127.0.0.1", broker=True) as server:
        spin.schedule("ok", 1)
        spin.schedule("ok", 2)
        samples = scrape(server.port)
    assert value(samples, "spinach_queue_jobs", queue="spinach", namespace=NAMESPACE) == 2
    assert value(samples, "spinach_jobs_enqueued_total", task="ok") == 2


# -- real worker processes -----------------------------------------------------------------


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "metered_app.py").write_text(APP)
    return tmp_path


@pytest.fixture
def client_engine(redis_url: str) -> Iterator[Engine]:
    engine = Engine(RedisBroker(redis_url), namespace=NAMESPACE)
    for name, retries in (("ok", 0), ("fail", 0), ("flaky", 1)):  # the jobs carry them
        engine.task(lambda n: None, name=name, max_retries=retries)
    yield engine
    engine.broker.stop()


def test_supervised_worker_serves_the_sum_of_its_processes(app_dir, redis_url, client_engine):
    port = free_port()
    env = {**os.environ, URL_VARIABLE: redis_url}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "spinach", "worker", "metered_app:spin", "--processes",
               "2", "--threads", "2", "--metrics-port", str(port)]  # fmt: skip
    process = subprocess.Popen(command, cwd=app_dir, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    assert process.stdout is not None
    log = LogReader(process.stdout)
    try:
        log.wait_for(r"Worker \w+ started: ", count=2)
        _schedule_known_jobs(client_engine)
        # A child writes the run times last: a scrape with all of them has every count.
        samples = scrape_until(port, lambda s: _run_times(s) == OK + FAIL + 2 * FLAKY)
        _assert_known_counts(samples)
        pids = {int(p) for p in _child_pids(log.text)}
        assert len(pids) == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0, log.text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT)
        process.stdout.close()
        log.join()


def _run_times(samples: Samples) -> float:
    return value(samples, "spinach_job_run_seconds_count")


def _child_pids(text: str) -> list[str]:
    return re.findall(r"Started worker process \d+ of \d+ \(pid (\d+)\)", text)


def test_metrics_port_without_the_extra_fails_clearly(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "spinach.contrib.prometheus", raising=False)
    with pytest.raises(ImportError, match=r"spinach-queue\[prometheus\]"):
        import spinach.contrib.prometheus  # noqa: F401


def test_the_grafana_dashboard_names_only_metrics_we_export():
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    used = {name for expr in exprs for name in re.findall(r"\bspinach_\w+", expr)}
    families = [*prometheus.JobMetrics().registry.collect()]
    families += prometheus.BrokerCollector(MemoryBroker()).describe()
    exported = set().union(*(_sample_names(family) for family in families))
    assert used and used <= exported, used - exported


def _sample_names(family: prometheus.GaugeMetricFamily) -> set[str]:
    """The names of the samples of a metric family, even before it has any."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    return {family.name + suffix for suffix in suffixes.get(family.type, ("",))}


def test_a_metrics_port_in_use_fails_the_worker_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = subprocess.run(
            [sys.executable, "-m", "spinach", "worker", "tests.cli_apps.basic:spin",
             "--stop-when-queue-empty", "--metrics-port", str(port)],
            cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
    assert worker.returncode == 1
    assert f"spinach: --metrics-port {port}: " in worker.stderr
    assert "Traceback" not in worker.stderr
