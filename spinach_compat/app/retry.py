"""``Task.retry`` and ``autoretry_for``, with Celery's semantics."""

from __future__ import annotations

import functools
import random
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..exceptions import Ignore, Retry
from .trace import raise_with_context

if TYPE_CHECKING:
    from .task import Task


def retry(
    task: Task,
    args: Any,
    kwargs: Any,
    exc: BaseException | None,
    throw: bool,
    eta: datetime | None,
    countdown: float | None,
    max_retries: int | None,
    options: dict,
) -> Retry:
    """Ask for another run of the current request; see ``Task.retry``."""
    request = task.request
    retries = request.retries + 1
    if max_retries is not None:
        task.override_max_retries = max_retries
    limit = task.max_retries if max_retries is None else max_retries
    if request.called_directly:  # a plain call: nothing to retry, raise what happened
        raise_with_context(exc or Retry("Task can be retried", None))
    if not eta and countdown is None:
        countdown = task.default_retry_delay
    sig = task.signature_from_request(
        request, args, kwargs, countdown=countdown, eta=eta, retries=retries, **options
    )
    if limit is not None and retries > limit:
        if exc:
            raise_with_context(exc)
        raise task.MaxRetriesExceededError(
            f"Can't retry {task.name}[{request.id}] args:{sig.args} kwargs:{sig.kwargs}",
            task_args=sig.args,
            task_kwargs=sig.kwargs,
        )
    ret = Retry(exc=exc, when=eta or countdown, is_eager=request.is_eager, sig=sig)
    if throw:
        raise ret
    if not request.is_eager:  # the worker re-enqueues the job once this run ends
        request.pending_retry = ret
    return ret


def backoff_countdown(factor: int, retries: int, maximum: int, full_jitter: bool) -> int:
    """Seconds before an automatic retry: exponential, capped, then fully jittered."""
    countdown = min(maximum, factor * 2**retries)
    if full_jitter:
        countdown = random.randrange(countdown + 1)
    return max(0, countdown)


def add_autoretry(task: Task) -> None:
    """Wrap ``task.run`` so that the exceptions of ``autoretry_for`` retry the task."""
    if not task.autoretry_for or hasattr(task, "_orig_run"):
        return
    autoretry_for = tuple(task.autoretry_for)
    dont_autoretry_for = tuple(task.dont_autoretry_for or ())
    original = task.run

    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        except (Ignore, Retry):
            raise
        except dont_autoretry_for:
            raise
        except autoretry_for as exc:
            raise _autoretry(task, exc) from None

    task._orig_run, task.run = original, run


def _autoretry(task: Task, exc: BaseException) -> Retry:
    options = dict(task.retry_kwargs or {})
    if task.retry_backoff:
        options["countdown"] = backoff_countdown(
            int(max(1.0, float(task.retry_backoff))),
            task.request.retries,
            int(task.retry_backoff_max),
            task.retry_jitter,
        )
    if hasattr(task, "override_max_retries"):
        options["max_retries"] = task.override_max_retries
    ret = task.retry(exc=exc, **options)
    if hasattr(task, "override_max_retries"):
        del task.override_max_retries
    return ret
