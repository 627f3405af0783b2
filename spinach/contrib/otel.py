"""OpenTelemetry tracing: a span when jobs are scheduled, one when each runs, in one trace.

Needs ``opentelemetry-api`` (``pip install 'spinach-queue[otel]'``), imported only when this
module is; spans go to the tracer provider the application set up (the SDK and an exporter
are the application's choice). ``instrument()`` in the producer and in the worker (e.g. at
the import of the module declaring the tasks):

- scheduling a job (``Engine.schedule*``, the facade's ``delay``/``apply_async``) makes a
  PRODUCER span ``send <task>`` and puts its context in the job's meta with the global
  propagator (W3C ``traceparent``/``tracestate`` by default): in ``meta["otel"]`` of a
  native job, in the message headers (``meta["headers"]``) of a facade job, where Celery's
  opentelemetry-instrumentation-celery puts it too, so a trace started by an instrumented
  Celery producer continues into our worker, and ours into a Celery worker;
- running it makes a CONSUMER span ``process <task>``, child of that context and current
  while the task runs (the task's own spans nest under it). A failure is recorded on it
  with status ERROR; a failed attempt scheduled for a retry is an exception event and a
  ``retry`` event.

Attributes follow the messaging semantic conventions: ``messaging.system`` ("spinach"),
``messaging.destination.name`` (the queue), ``messaging.message.id`` (the job id),
``messaging.operation.type``; and ``spinach.task.name``, ``spinach.job.retries``. Hooks
hang on the engine's signals: one that raises is logged, never breaks a job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import __version__, signals
from ..job import Job

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "spinach.contrib.otel needs opentelemetry-api: pip install 'spinach-queue[otel]'"
    ) from exc

#: The meta key of a native job's trace context (a facade job's travels in its headers).
META_KEY = "otel"

#: ``messaging.system`` of the spans.
MESSAGING_SYSTEM = "spinach"

_HOOKS = ("before_schedule", "after_schedule", "job_started", "job_finished",
          "job_failed", "job_schedule_retry")  # fmt: skip


def carrier(job: Job) -> dict[str, Any]:
    """Where the trace context of ``job`` travels: the Celery headers of a facade job,
    else ``meta["otel"]`` (created)."""
    headers = job.meta.get("headers")
    if isinstance(headers, dict):
        return headers
    return job.meta.setdefault(META_KEY, {})


def _read_carrier(job: Job) -> Mapping[str, Any]:
    headers = job.meta.get("headers")
    if isinstance(headers, dict) and "traceparent" in headers:
        return headers
    own = job.meta.get(META_KEY)
    return own if isinstance(own, dict) else {}


class Tracing:
    """The tracing hooks of this process; ``instrument`` builds and connects one.

    ``namespace`` restricts them to one engine's (default: every namespace);
    ``tracer_provider`` defaults to the global one.
    """

    def __init__(self, namespace: str | None = None, tracer_provider: Any = None):
        self.namespace = namespace
        self.tracer = trace.get_tracer("spinach", __version__, tracer_provider=tracer_provider)
        self._sending: dict[int, Any] = {}  # id(job) -> its producer span
        self._running: dict[int, tuple[Any, Any]] = {}  # id(job) -> (span, context token)

    def connect(self) -> Tracing:
        """Connect to the engine's signals (strongly); returns self."""
        sender = signals.ANY if self.namespace is None else self.namespace
        for name in _HOOKS:
            getattr(signals, name).connect(getattr(self, f"_on_{name}"), sender=sender, weak=False)
        return self

    def disconnect(self) -> None:
        """Stop tracing."""
        for name in _HOOKS:
            getattr(signals, name).disconnect(getattr(self, f"_on_{name}"))

    # -- producer ----------------------------------------------------------------------

    def _on_before_schedule(self, namespace: str, jobs: list[Job], **kwargs: Any) -> None:
        for job in jobs:
            into = carrier(job)
            parent = propagate.extract(into) if "traceparent" in into else None
            span = self.tracer.start_span(
                f"send {job.task_name}", context=parent, kind=SpanKind.PRODUCER,
                attributes=_attributes(namespace, job, "send"),
            )  # fmt: skip
            propagate.inject(into, context=trace.set_span_in_context(span))
            self._sending[id(job)] = span

    def _on_after_schedule(self, namespace: str, jobs: list[Job], err: Any = None) -> None:
        for job in jobs:
            span = self._sending.pop(id(job), None)
            if span is None:
                continue
            if err is not None:
                _record_error(span, err)
            span.end()

    # -- consumer ----------------------------------------------------------------------

    def _on_job_started(self, namespace: str, job: Job, **kwargs: Any) -> None:
        parent = propagate.extract(_read_carrier(job))
        span = self.tracer.start_span(
            f"process {job.task_name}", context=parent, kind=SpanKind.CONSUMER,
            attributes=_attributes(namespace, job, "process"),
        )  # fmt: skip
        token = otel_context.attach(trace.set_span_in_context(span))
        self._running[id(job)] = (span, token)

    def _on_job_finished(self, namespace: str, job: Job, **kwargs: Any) -> None:
        running = self._running.pop(id(job), None)
        if running is None:
            return
        span, token = running
        try:
            span.set_attribute("spinach.job.status", job.status.name.lower())
            span.end()
        finally:
            otel_context.detach(token)

    def _on_job_failed(self, namespace: str, job: Job, err: Any = None, **kwargs: Any) -> None:
        running = self._running.get(id(job))
        if running is not None and err is not None:
            _record_error(running[0], err)

    def _on_job_schedule_retry(
        self, namespace: str, job: Job, err: Any = None, **kwargs: Any
    ) -> None:
        running = self._running.get(id(job))
        if running is None:
            return
        span = running[0]
        if isinstance(err, BaseException):
            span.record_exception(err)
        span.add_event(
            "retry", {"spinach.job.retries": job.retries, "spinach.job.due": job.at_timestamp}
        )


def _attributes(namespace: str, job: Job, operation: str) -> dict[str, Any]:
    return {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": job.queue,
        "messaging.message.id": job.id,
        "spinach.task.name": job.task_name,
        "spinach.job.retries": job.retries,
        "spinach.namespace": namespace,
    }


def _record_error(span: Any, err: BaseException) -> None:
    span.record_exception(err)
    span.set_status(Status(StatusCode.ERROR, f"{type(err).__name__}: {err}"))


def instrument(namespace: str | None = None, tracer_provider: Any = None) -> Tracing:
    """Trace the jobs scheduled and run in this process (of ``namespace``, default every
    one); ``disconnect()`` the returned ``Tracing`` to stop."""
    return Tracing(namespace, tracer_provider).connect()
