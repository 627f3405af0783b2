"""``Task.retry`` and ``autoretry_for``, with Celery's semantics."""

from __future__ import annotations

import functools
import inspect
import random
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..exceptions import Ignore, Retry
from .trace import raise_with_context

if TYPE_CHECKING:
    from .context import Context
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
    args, kwargs = retry_arguments(task, request, args, kwargs)
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


def retry_arguments(task: Task, request: Context, args: Any, kwargs: Any) -> tuple[Any, Any]:
    """The ``args`` and ``kwargs`` given to ``retry``, fitted to the request's, as Celery's
    (issue #6494); None keeps the request's own.

    Only ``args``: the request's kwargs stay, but for the parameters ``args`` now fills.
    Only ``kwargs``: they replace the request's kwargs, and the request's positional
    arguments they name.
    """
    from .task import run_signature  # task.py imports this module at import time

    signature = run_signature(task)
    if signature is None:
        return args, kwargs
    if args is not None and kwargs is None and request.kwargs:
        filled = _positional_names(signature)[: len(args)]
        return args, {k: v for k, v in request.kwargs.items() if k not in filled}
    if kwargs is not None and args is None and request.args:
        return _named_into_args(signature, request.args, kwargs)
    return args, kwargs


def _positional_names(signature: inspect.Signature) -> list[str | None]:
    """The names of the parameters taken by position; None for a positional-only one."""
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [
        p.name if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD else None
        for p in signature.parameters.values()
        if p.kind in positional
    ]


def _named_into_args(signature: inspect.Signature, args: Any, kwargs: dict) -> tuple[Any, Any]:
    """``kwargs`` naming a parameter ``args`` fills replace that positional argument."""
    try:
        bound = signature.bind_partial(*args)
    except TypeError:
        return args, kwargs  # the arguments check reports it
    rest = dict(kwargs)
    for name in list(rest):
        kind = signature.parameters[name].kind if name in signature.parameters else None
        if name in bound.arguments and kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
            bound.arguments[name] = rest.pop(name)
    return bound.args, {**bound.kwargs, **rest}


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

    task._orig_run = original
    task.run = run  # type: ignore[method-assign]  # this instance's run is wrapped


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
