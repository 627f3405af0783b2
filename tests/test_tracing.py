"""OpenTelemetry tracing (``spinach.contrib.otel``): the producer's and the worker's spans
make one trace, in process and across a real worker process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from spinach import Engine, MemoryBroker, RedisBroker
from spinach.contrib import otel
from spinach.exc import RetryException
from tests.helpers import SignalRecorder
from tests.support.span_file import SPAN_FILE_VARIABLE, read_spans

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0
NAMESPACE = "traced"
URL_VARIABLE = "TRACING_TEST_REDIS_URL"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Spans of this test only: a provider of its own, not the global one."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exporter.provider = provider  # type: ignore[attr-defined]
    yield exporter
    provider.shutdown()


@pytest.fixture
def spin(exporter) -> Iterator[Engine]:
    engine = Engine(MemoryBroker(), namespace=NAMESPACE)
    attempts: dict[int, int] = {}

    @engine.task(name="ok")
    def ok(n: int) -> int:
        return n

    @engine.task(name="fail", max_retries=0)
    def fail() -> None:
        raise ValueError("broken input")

    @engine.task(name="flaky", max_retries=1)
    def flaky(n: int) -> None:
        attempts[n] = attempts.get(n, 0) + 1
        if attempts[n] == 1:
            raise RetryException("first attempt", at=datetime.now(timezone.utc))

    tracing = otel.instrument(NAMESPACE, tracer_provider=exporter.provider)
    yield engine
    tracing.disconnect()
    if engine.running:
        engine.stop_workers()


def _run_until_done(engine: Engine, finished: int) -> None:
    recorder = SignalRecorder(NAMESPACE)
    try:
        engine.start_workers(number=2, block=False, stop_when_queue_empty=True)
        assert engine.wait_until_stopped(TIMEOUT)
        recorder.wait_for_count("job_finished", finished)
    finally:
        recorder.close()


def _by_name(exporter: InMemorySpanExporter) -> dict[str, list]:
    spans: dict[str, list] = {}
    for span in exporter.get_finished_spans():
        spans.setdefault(span.name, []).append(span)
    return spans


def test_the_worker_span_continues_the_producers_trace(spin, exporter):
    tracer = exporter.provider.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        job = spin.schedule("ok", 1)
    assert "traceparent" in job.meta[otel.META_KEY]  # carried in the job's meta
    _run_until_done(spin, 1)
    spans = _by_name(exporter)
    (send,), (process,) = spans["send ok"], spans["process ok"]
    trace_id = request.get_span_context().trace_id
    assert {s.context.trace_id for s in (send, process)} == {trace_id}
    assert send.parent.span_id == request.get_span_context().span_id
    assert process.parent.span_id == send.context.span_id
    assert (send.kind, process.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert process.attributes["messaging.system"] == "spinach"
    assert process.attributes["messaging.destination.name"] == "spinach"
    assert process.attributes["messaging.message.id"] == job.id
    assert process.attributes["spinach.task.name"] == "ok"
    assert process.status.status_code is StatusCode.UNSET


def test_a_failure_is_recorded_with_status_error(spin, exporter):
    spin.schedule("fail")
    _run_until_done(spin, 1)
    (process,) = _by_name(exporter)["process fail"]
    assert process.status.status_code is StatusCode.ERROR
    assert "ValueError" in process.status.description
    (exception,) = [e for e in process.events if e.name == "exception"]
    assert exception.attributes["exception.message"] == "broken input"


def test_a_retry_is_an_event_and_both_attempts_share_the_trace(spin, exporter):
    spin.schedule("flaky", 1)
    _run_until_done(spin, 2)
    (send,) = _by_name(exporter)["send flaky"]
    first, second = _by_name(exporter)["process flaky"]
    assert [e.name for e in first.events] == ["exception", "retry"]
    assert second.events == ()
    assert {first.parent.span_id, second.parent.span_id} == {send.context.span_id}
    assert second.attributes["spinach.job.retries"] == 1


def test_a_job_scheduled_by_a_job_is_a_child_of_its_span(spin, exporter):
    @spin.task(name="parent")
    def parent() -> None:
        spin.schedule("ok", 2)

    spin.schedule("parent")
    _run_until_done(spin, 2)
    spans = _by_name(exporter)
    (process_parent,), (send_child,) = spans["process parent"], spans["send ok"]
    assert send_child.parent.span_id == process_parent.context.span_id


def test_a_failed_enqueue_ends_its_span_with_the_error(spin, exporter, monkeypatch):
    def refuse(jobs, from_failure=False):
        raise ConnectionError("broker down")

    monkeypatch.setattr(spin.broker, "enqueue_jobs", refuse)
    with pytest.raises(ConnectionError):
        spin.schedule("ok", 1)
    (send,) = _by_name(exporter)["send ok"]
    assert send.status.status_code is StatusCode.ERROR


def test_without_the_extra_the_error_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "spinach.contrib.otel", raising=False)
    with pytest.raises(ImportError, match=r"spinach-queue\[otel\]"):
        import spinach.contrib.otel  # noqa: F401


# -- across a real worker process ----------------------------------------------------------

APP = f'''"""A traced worker: spans go to the file the environment names."""
import os

from spinach import Engine, RedisBroker
from tests.support.span_file import install_from_environment

install_from_environment()
spin = Engine(RedisBroker(os.environ["{URL_VARIABLE}"]), namespace="{NAMESPACE}")


@spin.task(name="ok")
def ok(n):
    return n
'''


def test_the_trace_continues_into_a_worker_process(tmp_path, redis_url, exporter):
    (tmp_path / "traced_app.py").write_text(APP)
    span_file = tmp_path / "spans.jsonl"
    client = Engine(RedisBroker(redis_url), namespace=NAMESPACE)
    client.task(lambda n: None, name="ok")
    tracing = otel.instrument(NAMESPACE, tracer_provider=exporter.provider)
    try:
        with exporter.provider.get_tracer("test").start_as_current_span("request"):
            client.schedule("ok", 1)
    finally:
        tracing.disconnect()
        client.broker.stop()
    env = {**os.environ, URL_VARIABLE: redis_url, SPAN_FILE_VARIABLE: str(span_file)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    worker = subprocess.run(
        [sys.executable, "-m", "spinach", "worker", "traced_app:spin", "--stop-when-queue-empty"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    (process,) = [s for s in read_spans(span_file) if s["name"] == "process ok"]
    (send,) = _by_name(exporter)["send ok"]
    assert process["trace_id"] == f"{send.context.trace_id:032x}"
    assert process["parent_id"] == f"{send.context.span_id:016x}"
    assert process["kind"] == "CONSUMER"
