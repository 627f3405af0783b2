"""Sentry integration: job failures reported once, job runs traced as transactions.

Needs sentry-sdk (``pip install 'spinach-queue[sentry]'``), imported only when this module
is. Add the integration where the workers run::

    sentry_sdk.init(dsn=..., integrations=[SpinachIntegration()], traces_sample_rate=...)

Each job runs in a Sentry isolation scope of its own, with a transaction named after its
task when tracing is on (a root span on sentry-sdk 3), its status an error when the
attempt failed. A job failing for good is captured
once, tagged ``spinach.job_id``, ``spinach.task``, ``spinach.queue`` and ``spinach.attempt``
(a Celery facade job also carries CeleryIntegration's ``celery_task_id`` tag and
``celery-job`` extra, so existing Sentry searches and alerts keep working); an attempt
scheduled for a retry is captured only with ``send_retries=True``. The worker's own log line
of the failure is not sent again as a second event. Hooks hang on the engine's signals: one
that raises is logged, never breaks a job. Thread and gevent workers only: the scope of a
job follows its thread.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from .. import signals
from ..exc import AbortException
from ..job import Job

try:
    import sentry_sdk
    from sentry_sdk.integrations import Integration
    from sentry_sdk.integrations import logging as sentry_logging
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "spinach.contrib.sentry needs sentry-sdk: pip install 'spinach-queue[sentry]'"
    ) from exc

__all__ = ["SpinachIntegration"]

#: The ``op`` of a job's transaction (Sentry's name for processing a queued message).
OP = "queue.process"

#: The loggers whose failure lines the captures replace (the facade logs Celery's).
_FAILURE_LOGGERS = ("spinach.worker", "celery.app.trace", "celery.worker.job")

_running = threading.local()  # the ExitStack of the job this thread runs


class SpinachIntegration(Integration):
    """Report Spinach jobs to Sentry; ``send_retries`` also captures retried attempts."""

    identifier = "spinach"

    def __init__(self, send_retries: bool = False):
        self.send_retries = send_retries

    @staticmethod
    def setup_once() -> None:
        # their failure lines (the worker's, the facade's as Celery's): the captures report them
        for logger_name in _FAILURE_LOGGERS:
            _ignore_for_events(logger_name)
        signals.job_started.connect(_job_started)
        signals.job_failed.connect(_job_failed)
        signals.job_schedule_retry.connect(_job_schedule_retry)
        signals.job_finished.connect(_job_finished)


def _ignore_for_events(logger_name: str) -> None:
    """Keep the logging integration from making events of ``logger_name``'s lines:
    ``ignore_logger_for_events`` on sentry-sdk 3 (its ``ignore_logger`` is for Sentry Logs),
    ``ignore_logger`` on sentry-sdk 2."""
    ignore = getattr(sentry_logging, "ignore_logger_for_events", None)
    (ignore or sentry_logging.ignore_logger)(logger_name)


def _integration() -> SpinachIntegration | None:
    return sentry_sdk.get_client().get_integration(SpinachIntegration)


def _job_started(namespace: str, job: Job, **kwargs: Any) -> None:
    if _integration() is None:
        return
    stack = contextlib.ExitStack()
    scope = stack.enter_context(sentry_sdk.isolation_scope())
    scope.clear_breadcrumbs()
    for key, value in _tags(namespace, job).items():
        scope.set_tag(key, value)
    celery = _celery_ids(job)
    if celery is not None:
        scope.set_tag("celery_task_id", celery[0])
        scope.set_extra("celery-job", {"task_name": celery[1]})
    _running.span = stack.enter_context(_transaction(job))
    _running.stack = stack


def _transaction(job: Job) -> contextlib.AbstractContextManager:
    """The job's run as a transaction: sentry-sdk 2's ``start_transaction``, else (3) a
    root span; a no-op when tracing is off."""
    start_transaction = getattr(sentry_sdk, "start_transaction", None)
    if start_transaction is not None:
        return start_transaction(op=OP, name=job.task_name, source="task")
    return sentry_sdk.start_span(name=job.task_name, parent_span=None, attributes={"sentry.op": OP})


def _tags(namespace: str, job: Job) -> dict[str, str]:
    return {
        "spinach.job_id": str(job.id),
        "spinach.task": job.task_name,
        "spinach.queue": job.queue,
        "spinach.attempt": str(job.retries + 1),
        "spinach.namespace": namespace,
    }


def _celery_ids(job: Job) -> tuple[str, str] | None:
    """(task id, task name) as Celery names them, for a facade job (its Celery headers)."""
    headers = job.meta.get("headers") if isinstance(job.meta, dict) else None
    if not isinstance(headers, dict):
        return None
    return str(headers.get("id") or job.id), str(headers.get("task") or job.task_name)


def _mark_failed() -> None:
    """Give the running job's transaction an error status (its attempt failed)."""
    span = getattr(_running, "span", None)
    if span is None:
        return
    if hasattr(span, "set_status"):  # sentry-sdk 2
        span.set_status("internal_error")
    else:  # sentry-sdk 3
        span.status = "error"


def _cause(err: BaseException) -> BaseException:
    """The error to report: a facade task's own error rather than the ``AbortException``
    the facade raises ``from`` it to fail the job without a native retry."""
    if isinstance(err, AbortException) and err.__cause__ is not None:
        return err.__cause__
    return err


def _job_failed(namespace: str, job: Job, err: Any = None, **kwargs: Any) -> None:
    if _integration() is not None and err is not None:
        sentry_sdk.capture_exception(_cause(err))  # in the job's scope, with its tags
        _mark_failed()


def _job_schedule_retry(namespace: str, job: Job, err: Any = None, **kwargs: Any) -> None:
    integration = _integration()
    if integration is not None:
        _mark_failed()
    if integration is not None and integration.send_retries and err is not None:
        # the retry count is advanced already: the failed attempt is the one before
        sentry_sdk.set_tag("spinach.attempt", str(job.retries))
        sentry_sdk.capture_exception(err)


def _job_finished(namespace: str, job: Job, **kwargs: Any) -> None:
    stack = getattr(_running, "stack", None)
    if stack is not None:
        _running.stack = _running.span = None
        stack.close()
