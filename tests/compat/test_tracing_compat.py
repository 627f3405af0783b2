"""Tracing across Celery and the facade: a real Celery producer instrumented with
opentelemetry-instrumentation-celery continues its trace into our worker, and a facade
producer's context travels in the message headers, where Celery's instrumentation reads it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from spinach import signals
from spinach.contrib import otel
from spinach_compat.interop.bridge import CeleryBridge

from .interop_proj.tasks import register

celery = pytest.importorskip("celery")
instrumentation = pytest.importorskip("opentelemetry.instrumentation.celery")
WAIT = 30.0


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def facade(make_app, redis_url, provider):
    """A traced facade app whose worker consumes Celery's 'celery' queue through the bridge."""
    app = make_app("traced", broker=redis_url, backend=redis_url)
    register(app)
    tracing = otel.instrument(app.namespace, tracer_provider=provider[0])
    yield app
    tracing.disconnect()


def test_a_celery_producers_trace_continues_into_our_worker(facade, redis_url, provider):
    tracer_provider, exporter = provider
    instrumentor = instrumentation.CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    client = celery.Celery("client", broker=redis_url, backend=redis_url, set_as_current=False)
    facade.start_worker(concurrency=2, queues=["celery"], block=False)
    bridge = CeleryBridge(facade, ["celery"], poll_interval=0.02).start()
    try:
        assert client.send_task("interop.add", args=(2, 3)).get(timeout=WAIT) == 5
    finally:
        bridge.stop()
        client.close()
        instrumentor.uninstrument()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    sent, ran = spans["apply_async/interop.add"], spans["process interop.add"]
    assert (sent.kind, ran.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert ran.context.trace_id == sent.context.trace_id
    assert ran.parent.span_id == sent.context.span_id


def test_a_facade_producer_puts_its_context_in_the_celery_headers(facade, provider):
    tracer_provider, exporter = provider
    seen = []

    def keep(namespace, jobs=(), **kwargs):
        seen.extend(jobs)

    signals.after_schedule.connect(keep, weak=False)
    try:
        with tracer_provider.get_tracer("test").start_as_current_span("request"):
            facade.send_task("interop.add", args=(1, 1))
    finally:
        signals.after_schedule.disconnect(keep)
    (job,) = seen
    headers = job.meta["headers"]
    (sent,) = [s for s in exporter.get_finished_spans() if s.name == "send interop.add"]
    assert headers["traceparent"].split("-")[1:3] == [
        f"{sent.context.trace_id:032x}",
        f"{sent.context.span_id:016x}",
    ]
    assert otel.META_KEY not in job.meta  # one place only: the headers Celery reads
