"""``link`` and ``link_error``: the signatures applied after a task succeeds or fails.

As in Celery: after a success each ``link`` signature is sent with the task's result
prepended to its arguments (not to an immutable one's); after a failure (not a retry) each
``link_error`` signature is called. An errback made with ``@app.task`` (not ``bind=True``)
whose function takes more than one positional argument (besides the ones its signature
already holds) is called here and now as ``errback(request, exc, traceback)``; any other
errback (one argument, bound, class-based, or not registered here) is sent as a task with
the failed task's id as argument (applied eagerly when the failed task ran eagerly).

The signatures travel in the job's meta (``callbacks``/``errbacks``, as in a Celery
message's embed), JSON with kombu's type markers, so they survive the queue.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kombu.utils import json as kombu_json

from .._state import app_of

if TYPE_CHECKING:
    from ..canvas import Signature
    from .base import Celery
    from .context import Context
    from .task import Task

logger = logging.getLogger("spinach_compat.trace")


def as_list(value: Any) -> list | None:
    """``link=`` as a list: None stays None, one signature becomes a list of one."""
    if value is None:
        return None
    if isinstance(value, dict):
        return [value]
    return list(value)


def encode(value: Any) -> list | None:
    """Signatures as plain JSON values, for a job's meta."""
    sigs = as_list(value)
    return json.loads(kombu_json.dumps([dict(sig) for sig in sigs])) if sigs else None


def encode_one(sig: Signature) -> dict:
    """One signature as a plain JSON value (``encode``'s item)."""
    return json.loads(kombu_json.dumps(dict(sig)))


def decode_one(value: dict) -> dict:
    """One signature back from ``encode_one`` (as a plain dict)."""
    return kombu_json.loads(json.dumps(value))


def decode(value: list | None) -> list | None:
    """Signatures back from ``encode`` (as plain dicts)."""
    return kombu_json.loads(json.dumps(value)) if value else None


def send_callbacks(task: Task, request: Context, retval: Any) -> None:
    """Apply each ``link`` of ``request`` with ``retval`` prepended to its arguments."""
    from ..canvas import maybe_signature

    app = app_of(task)
    root_id = request.root_id or request.id
    for callback in request.callbacks or ():
        sig = maybe_signature(callback, app=app)
        sig.apply_async((retval,), parent_id=request.id, root_id=root_id)


def call_errbacks(task: Task, request: Context, exc: BaseException, traceback: str) -> None:
    """Call or send each ``link_error`` of ``request`` after its failure (Celery's rule)."""
    from ..canvas import maybe_signature

    app = app_of(task)
    as_tasks: list[Signature] = []
    for errback in request.errbacks or ():
        sig = maybe_signature(errback, app=app)
        function = _errback_function(sig)
        if function is None or not _takes_more_than(sig, function, 1):
            as_tasks.append(sig)
            continue
        try:
            sig(request, exc, traceback)
        except Exception:
            logger.exception("Errback %r raised an exception", sig.name)
    _send_errback_tasks(app, request, as_tasks)


def _send_errback_tasks(app: Celery, request: Context, sigs: list[Signature]) -> None:
    """Errbacks of the old style: tasks taking the failed task's id."""
    root_id = request.root_id or request.id
    eager = app.conf.task_always_eager or (request.delivery_info or {}).get("is_eager", False)
    for sig in sigs:
        apply = sig.apply if eager else sig.apply_async
        apply((request.id,), parent_id=request.id, root_id=root_id)


def _errback_function(sig: Signature) -> Callable | None:
    """The user's function of an errback made by ``@app.task`` without ``bind``, else None."""
    try:
        errback = sig.type
    except KeyError:  # not registered here: sent on for a worker that knows it
        return None
    if not getattr(errback, "_decorated", False):
        return None
    if not isinstance(inspect.getattr_static(type(errback), "run", None), staticmethod):
        return None  # bind=True: Celery always sends such an errback as a task
    return getattr(type(errback), "__wrapped__", None)


def _takes_more_than(sig: Signature, function: Callable, n: int) -> bool:
    """Whether ``function`` takes more than ``n`` positional arguments besides the
    signature's own (an invalid partial call counts the function alone)."""
    if not sig.immutable and (sig.args or sig.kwargs):
        try:
            return _positional_arity(functools.partial(function, *sig.args, **sig.kwargs)) > n
        except (TypeError, ValueError):
            pass
    return _positional_arity(function) > n


def _positional_arity(function: Callable) -> float:
    spec = inspect.getfullargspec(function)
    return float("inf") if spec.varargs else len(spec.args)
