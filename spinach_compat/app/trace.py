"""Running one task attempt: request, hooks, signals, result storing, retry translation.

``trace_task`` is shared by eager runs (``Task.apply``) and by the native engine, which runs
``run_job`` as the function of each Celery-style task: there is one execution path.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback as tb_module
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from kombu.exceptions import ContentDisallowed, DecodeError, EncodeError
from kombu.utils import json as kombu_json
from kombu.utils.encoding import safe_repr

from spinach.context import current_job
from spinach.exc import AbortException, DeferException, RetryException

from .. import signals, states
from .._state import app_of, pop_task, push_task
from ..exceptions import Ignore, Reject, Retry
from ..utils.saferepr import saferepr
from . import chords, codec, links
from .timelimits import call_with_limits

if TYPE_CHECKING:
    from spinach.job import Job

    from .task import Context, Task

logger = logging.getLogger("spinach_compat.trace")
#: Celery's logger of task outcomes, so a logging configuration naming it still applies.
task_logger = logging.getLogger("celery.app.trace")

#: Characters of a result shown in the success line (Celery's ``resultrepr_maxsize``).
RESULT_REPR_MAXSIZE = 1024

IGNORE_STATES = frozenset({states.IGNORED, states.RETRY, states.REJECTED})

#: How long a refused job waits when its dead letter could not be stored (the broker is
#: away). Shorter sets it aside sooner once the broker is back, at the cost of more tries.
_REFUSAL_RETRY = timedelta(seconds=5)

#: What watches every worker attempt in its thread (the task events of running workers,
#: ``spinach_compat.events.worker``): ``started(task, request)`` before the body returns a
#: token, given back to ``finished(token, task, request, state, retval, runtime)`` after it
#: (``runtime``: the body's seconds on success, else None). Called directly rather than
#: through signals, as they are on every job; an error of one is logged, never the task's.
#: Iterated without a copy: a running service replaces the list rather than changing it.
watchers: list[Any] = []


class ExceptionInfo:
    """An exception with its traceback, as handed to ``on_failure`` and ``on_retry``."""

    def __init__(self, exc: BaseException):
        self.type = type(exc)
        self.exception = exc
        self.tb = exc.__traceback__
        self.traceback = "".join(tb_module.format_exception(self.type, exc, self.tb))

    def __str__(self) -> str:
        return self.traceback

    def __repr__(self) -> str:
        return f"<ExceptionInfo: {self.exception!r}>"


@dataclass
class Outcome:
    """How an attempt ended."""

    state: str
    retval: Any
    einfo: ExceptionInfo | None = None
    runtime: float | None = None  #: seconds the body and its success took (success only)


def trace_task(task: Task, request: Context, *, eager: bool, propagate: bool) -> Outcome:
    """Run one attempt of ``task`` under ``request``, as Celery's worker would."""
    push_task(task)
    task.push_request(request)
    outcome = Outcome(states.PENDING, None)
    watching: list[tuple[Any, Any]] | None = None
    try:
        signals.task_prerun.send(
            sender=task, task_id=request.id, task=task, args=request.args, kwargs=request.kwargs
        )
        if watchers and not eager:
            watching = _watch_started(task, request)
        outcome = _attempt(task, request, eager, propagate)
        if outcome.state not in IGNORE_STATES:
            _call_handler(
                task, request, "after_return", outcome.state, outcome.retval, request.id,
                request.args, request.kwargs, None,
            )  # fmt: skip
        return outcome
    finally:
        try:
            if watching is not None:
                _watch_finished(watching, task, request, outcome)
            signals.task_postrun.send(
                sender=task, task_id=request.id, task=task, args=request.args,
                kwargs=request.kwargs, retval=outcome.retval, state=outcome.state,
            )  # fmt: skip
        finally:
            task.pop_request()
            pop_task()


def _watch_started(task: Task, request: Context) -> list[tuple[Any, Any]]:
    """Every watcher's ``started`` and its token (None if it raised: logged)."""
    watching = []
    for watcher in watchers:
        try:
            watching.append((watcher, watcher.started(task, request)))
        except Exception:
            logger.exception("started of %r raised (the task is not affected)", watcher)
            watching.append((watcher, None))
    return watching


def _watch_finished(
    watching: list[tuple[Any, Any]], task: Task, request: Context, outcome: Outcome
) -> None:
    """The ``finished`` of the watchers that saw the start; one that raises is logged."""
    for watcher, token in watching:
        try:
            watcher.finished(token, task, request, outcome.state, outcome.retval, outcome.runtime)
        except Exception:
            logger.exception("finished of %r raised (the task is not affected)", watcher)


def _attempt(task: Task, request: Context, eager: bool, propagate: bool) -> Outcome:
    store = should_store(task, request, eager)
    if store and not eager and task.track_started:
        info = {"pid": os.getpid(), "hostname": request.hostname}
        task.backend.store_result(_task_id(request), info, states.STARTED, request=request)
    started = time.monotonic()
    try:
        task.before_start(_task_id(request), request.args, request.kwargs)
        function = _function(task)
        retval = call_with_limits(task, request, lambda: function(*request.args, **request.kwargs))
    except Reject as exc:
        return Outcome(states.REJECTED, exc)
    except Ignore as exc:
        return Outcome(states.IGNORED, exc)
    except Retry as exc:
        if propagate:
            raise
        return _on_retry(task, request, exc, store)
    except Exception as exc:
        if propagate:
            raise
        return _on_failure(task, request, exc, store)
    return _on_returned(task, request, retval, store, propagate, started)


def _on_returned(
    task: Task, request: Context, retval: Any, store: bool, propagate: bool, started: float
) -> Outcome:
    """After the body returned: callbacks, then the result stored, then ``on_success``.

    As Celery, failing to send a callback or to encode the result fails the task.
    """
    try:
        links.send_callbacks(task, request, retval)  # before the result is stored, as Celery
    except Exception as exc:
        return _failed(task, request, exc, store, propagate)
    try:
        if store:
            _mark_as_done(task, request, retval)
    except EncodeError as exc:  # any other error of the backend is an internal error
        return _failed(task, request, exc, store, propagate)
    if request.chord and not request.is_eager:
        chords.on_part_return(task, request)
    _call_handler(task, request, "on_success", retval, request.id, request.args, request.kwargs)
    runtime = time.monotonic() - started
    signals.task_success.send(sender=task, result=retval, runtime=runtime)
    if task_logger.isEnabledFor(logging.INFO):
        name, result = request.shadow or task.name, _short_repr(retval)
        task_logger.info("Task %s[%s] succeeded in %ss: %s", name, request.id, runtime, result)
    return Outcome(states.SUCCESS, retval, runtime=runtime)


def _short_repr(value: Any) -> str:
    """The text of a result in the success line, as Celery's: ``saferepr`` at most about
    ``RESULT_REPR_MAXSIZE`` characters, containers nested deeper than 3 shown as ``[...]``."""
    return saferepr(value, RESULT_REPR_MAXSIZE)


def _mark_as_done(task: Task, request: Context, retval: Any) -> None:
    """Store SUCCESS; a result JSON cannot carry raises ``EncodeError``, as Celery's backends."""
    try:
        task.backend.mark_as_done(_task_id(request), retval, request=request)
    except (TypeError, ValueError) as exc:
        if _encodable(retval):
            raise  # not the result's fault: an internal error
        raise EncodeError(exc) from exc


def _encodable(value: Any) -> bool:
    try:
        kombu_json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _call_handler(task: Task, request: Context, name: str, *args: Any) -> None:
    """Call ``task.<name>(*args)``, a handler run once the outcome is stored.

    In a worker, an error of the handler is only logged, as in Celery 5.7: failing the task
    now would run the errbacks of a task that succeeded. Eager runs raise it, as Celery's.
    """
    try:
        getattr(task, name)(*args)
    except (Reject, MemoryError):  # as Celery: not the handler's error to swallow
        raise
    except Exception as exc:
        if request.is_eager:
            raise
        logger.exception("Task %s[%s] %s handler raised: %r", task.name, request.id, name, exc)


def _function(task: Task) -> Any:
    """``task.run``, or the task itself when its class overrides ``__call__`` (as Celery)."""
    from .task import Task as BaseTask

    return task if type(task).__call__ is not BaseTask.__call__ else task.run


def _task_id(request: Context) -> str:
    """The id of a request being traced: it always has one (the worker's job id, or
    ``apply``'s)."""
    if request.id is None:
        raise ValueError(f"a task request without an id was traced: {request!r}")
    return request.id


def should_store(task: Task, request: Context, eager: bool) -> bool:
    ignore = request.ignore_result if request.ignore_result is not None else task.ignore_result
    if eager:
        return bool(not ignore and app_of(task).conf.task_store_eager_result)
    return not ignore


def _failed(task: Task, request: Context, exc: Exception, store: bool, propagate: bool) -> Outcome:
    """The failure of this attempt, or ``exc`` raised when the caller wants it propagated."""
    if propagate:
        raise exc
    return _on_failure(task, request, exc, store)


def _on_retry(task: Task, request: Context, reason: Retry, store: bool) -> Outcome:
    einfo = ExceptionInfo(reason)
    if store:
        task.backend.mark_as_retry(_task_id(request), reason.exc, einfo.traceback, request=request)
    task.on_retry(reason.exc, _task_id(request), request.args, request.kwargs, einfo)
    signals.task_retry.send(sender=task, request=request, reason=reason, einfo=einfo)
    logger.info("Task %s[%s] retry: %s", task.name, request.id, reason)
    return Outcome(states.RETRY, reason, einfo)


def _on_failure(task: Task, request: Context, exc: Exception, store: bool) -> Outcome:
    einfo = ExceptionInfo(exc)
    if store or (task.store_errors_even_if_ignored and not request.is_eager):
        task.backend.mark_as_failure(_task_id(request), exc, einfo.traceback, request=request)
    if request.chord and not request.is_eager:
        chords.on_part_return(task, request)
    if request.errbacks:
        links.call_errbacks(task, request, exc, einfo.traceback)
    task.on_failure(exc, _task_id(request), request.args, request.kwargs, einfo)
    signals.task_failure.send(
        sender=task, task_id=request.id, exception=exc, args=request.args,
        kwargs=request.kwargs, traceback=einfo.tb, einfo=einfo,
    )  # fmt: skip
    expected = isinstance(exc, tuple(task.throws or ()))  # as Celery's log lines
    description = "raised expected" if expected else "raised unexpected"
    task_logger.log(
        logging.INFO if expected else logging.ERROR, "Task %s[%s] %s: %s",
        request.shadow or task.name, request.id, description, safe_repr(exc),
        exc_info=None if expected else exc,
    )  # fmt: skip
    return Outcome(states.FAILURE, exc, einfo)


# -- native jobs ---------------------------------------------------------------------------


def run_job(task: Task, args: list, kwargs: dict) -> Any:
    """The body of every native job of a Celery-style task (run by the engine's workers).

    Success and Celery-level failure both end the native job (a failure as
    ``AbortException``, so the engine never retries it on its own); ``Retry`` becomes
    ``RetryException`` at the requested time, with the retried arguments put in the job.
    An error raised around the body (an internal error) fails the job too.
    """
    job = current_job()
    if job is None:
        raise RuntimeError("run_job runs inside a spinach worker only")
    try:
        args, kwargs = _decode_arguments(task, job, args, kwargs)
    except (ContentDisallowed, DecodeError) as exc:
        raise _refuse_payload(task, job, exc) from exc
    request = task.request_from_job(job, args, kwargs)
    if _revoked(task, request):
        return None
    _check_rate_limit(task, job)
    signals.task_received.send(sender=None, request=request)
    try:
        outcome = trace_task(task, request, eager=False, propagate=False)
    except Exception as exc:  # the engine would rerun the task forever (unlimited retries)
        raise _internal_error(task, request, exc) from exc
    if outcome.state == states.RETRY:
        raise _native_retry(task, job, outcome.retval)
    pending = getattr(request, "pending_retry", None)  # retry(throw=False)
    if pending is not None:
        raise _native_retry(task, job, pending)
    if outcome.state == states.REJECTED and getattr(outcome.retval, "requeue", False):
        raise RetryException("rejected with requeue", at=datetime.now(timezone.utc))
    if outcome.state == states.FAILURE:  # logged by ``_on_failure``
        failed = AbortException(f"task {task.name} failed: {outcome.retval!r}")
        raise _reported(failed) from outcome.retval
    return None


def _reported(exc: AbortException) -> AbortException:
    """``exc``, marked as logged already: the engine logs no second traceback of it."""
    exc.reported = True  # type: ignore[attr-defined]
    return exc


def _decode_arguments(task: Task, job: Job, args: list, kwargs: dict) -> tuple[list, dict]:
    """The job's arguments: plain JSON, or its encoded body if ``accept_content`` allows."""
    body = (job.meta or {}).get(codec.BODY)
    accept = app_of(task).conf.accept_content if body is not None else None
    return codec.decode(args, kwargs, body, accept)


def _refuse_payload(task: Task, job: Job, exc: Exception) -> Exception:
    """Dead-letter a job whose body is not accepted (or cannot be decoded), unread.

    As Celery's worker, FAILURE is stored with kombu's exception (unless the result is
    ignored), before the job is set aside. The dead letter keeps the payload: once the app
    accepts its content type, ``spinach dead-letters retry`` runs it. Returns the exception
    that ends the job: a ``DeferException`` to try again later if the broker could not take
    the dead letter.
    """
    content_type = ((job.meta or {}).get(codec.BODY) or {}).get("content_type")
    reason = (
        f"task {task.name} job {job.id}: its body of content type {content_type!r} cannot "
        f"be decoded here ({type(exc).__name__}: {exc}); accept_content is "
        f"{app_of(task).conf.accept_content!r}"
    )
    request = task.request_from_job(job, [], {})
    if should_store(task, request, eager=False) or task.store_errors_even_if_ignored:
        task.backend.mark_as_failure(_task_id(request), exc, None, request=request)
    logger.error("Dead-lettering %s", reason)
    try:
        app_of(task).engine.broker.dead_letter(job, reason)
    except Exception as error:  # the broker is away: the job comes back to be refused again
        logger.warning("Task %s[%s]: dead-lettering failed (%r)", task.name, job.id, error)
        return DeferException(f"dead-lettering failed: {error!r}", at=_now() + _REFUSAL_RETRY)
    return _reported(AbortException(reason))  # logged above


def _internal_error(task: Task, request: Context, exc: Exception) -> AbortException:
    """Report ``exc``, raised by the facade or a handler around the task's body.

    As Celery's worker: logged, ``task_internal_error`` sent, FAILURE stored unless an
    outcome already is, and the task is not run again (the returned exception ends the job).
    """
    logger.error(
        "Task %s[%s] internal error (raised outside its body): %r", task.name, request.id,
        exc, exc_info=exc,
    )  # fmt: skip
    einfo = ExceptionInfo(exc)
    signals.task_internal_error.send(
        sender=task, task_id=request.id, args=request.args, kwargs=request.kwargs,
        request=request, exception=exc, traceback=einfo.tb, einfo=einfo,
    )  # fmt: skip
    try:
        _store_internal_failure(task, request, einfo)
    except Exception:  # the backend itself may be what failed: the error is logged above
        logger.exception("Task %s[%s]: its FAILURE could not be stored", task.name, request.id)
    return _reported(AbortException(f"task {task.name} failed: internal error {exc!r}"))


def _store_internal_failure(task: Task, request: Context, einfo: ExceptionInfo) -> None:
    """Store FAILURE, unless the result is ignored or a final state is stored already."""
    if not (should_store(task, request, eager=False) or task.store_errors_even_if_ignored):
        return
    if task.backend.get_state_or_none(_task_id(request)) in states.READY_STATES:
        return  # e.g. FAILURE stored, then on_failure raised: keep the task's own outcome
    task.backend.mark_as_failure(
        _task_id(request), einfo.exception, einfo.traceback, request=request
    )


def _check_rate_limit(task: Task, job: Job) -> None:
    """Defer ``job`` to its slot when its task is over its ``rate_limit`` in this process.

    A deferred job keeps its reserved slot in its meta and runs when it comes back.
    """
    if not task.rate_limit or app_of(task).conf.spinach_global_rate_limits:
        return  # (global limits are the broker's: spinach_compat.app.ratelimit)
    meta = job.meta or {}
    if meta.get("rate_slot") is not None:
        job.meta = {k: v for k, v in meta.items() if k != "rate_slot"}
        return
    limiter = app_of(task).rate_limits.limiter(task.name or "", task.rate_limit)
    slot = limiter.acquire() if limiter is not None else None
    if slot is None:
        return
    job.meta = {**meta, "rate_slot": slot}
    at = datetime.fromtimestamp(slot, timezone.utc)
    raise DeferException(f"rate limit {task.rate_limit} of {task.name}", at=at)


def _revoked(task: Task, request: Context) -> bool:
    """Whether the job must not run: revoked, or expired before it started."""
    expired = request.expires is not None and _parse(request.expires) <= _now()
    control = app_of(task).control
    revoked = control.is_revoked(_task_id(request)) or (
        bool(request.stamps) and control.is_revoked_by_stamps(request.stamps)
    )
    if not expired and not revoked:
        return False
    task.backend.mark_as_revoked(
        _task_id(request), "expired" if expired else "revoked", request=request
    )
    if request.chord:  # as Celery: a discarded header task fails its chord's body
        chords.on_part_return(task, request)
    if expired:
        logger.info("Task %s[%s] expired: discarded", task.name, request.id)
    else:
        logger.info("Task %s[%s] revoked: discarded", task.name, request.id)
    signals.task_revoked.send(
        sender=task, request=request, terminated=False, signum=None, expired=expired
    )
    return True


def _native_retry(task: Task, job: Job, reason: Retry) -> RetryException:
    """Put the retry's arguments and eta in the job; the exception that re-enqueues it."""
    when = reason.when
    if isinstance(when, datetime):
        at = when if when.tzinfo else when.replace(tzinfo=app_of(task).timezone)
    else:
        at = _now() + timedelta(seconds=float(when or 0))
    sig = reason.sig
    meta = {**job.meta, "eta": at.isoformat()}
    if sig is not None:  # encoded as the job was (its serializer and compression)
        fmt = codec.format_of(meta.pop(codec.BODY, None))
        args, job.task_kwargs, body = codec.encode(sig.args, dict(sig.kwargs), *fmt)
        job.task_args = tuple(args)
        if body is not None:
            meta[codec.BODY] = body
    job.meta = meta
    return RetryException(f"Retry: {reason}", at=at)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _parse(value: str | datetime) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def raise_with_context(exc: BaseException) -> None:
    """Raise ``exc``; inside an ``except`` block, chained to the exception being handled."""
    current = sys.exc_info()[1]
    if current is None:
        raise exc
    if current is exc:
        raise exc
    raise exc from current
