"""Running a task eagerly (``Task.apply``, ``task_always_eager``), as Celery does."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from .. import states
from .._state import app_of, get_current_task
from . import links
from .context import Context
from .trace import trace_task

if TYPE_CHECKING:
    from ..result import EagerResult
    from .task import Task


def apply_eagerly(
    task: Task,
    args: list | tuple,
    kwargs: dict,
    task_id: str,
    retries: int,
    throw: bool | None,
    headers: dict | None,
    options: dict,
) -> EagerResult:
    """Run ``task`` here until it ends; a retry runs it again at once with retries + 1."""
    from ..result import EagerResult

    app = app_of(task)
    app.conf.check_supported()
    propagate = app.conf.task_eager_propagates if throw is None else throw
    while True:
        request = _eager_request(task, args, kwargs, task_id, retries, headers, options)
        outcome = trace_task(task, request, eager=True, propagate=propagate)
        retry = outcome.retval if outcome.state == states.RETRY else None
        if retry is None or retry.sig is None:
            break
        args, kwargs, retries = retry.sig.args, retry.sig.kwargs, retries + 1
    traceback = outcome.einfo.traceback if outcome.einfo else None
    return EagerResult(task_id, outcome.retval, outcome.state, traceback=traceback, name=task.name)


def _eager_request(
    task: Task,
    args: list | tuple,
    kwargs: dict,
    task_id: str,
    retries: int,
    headers: dict | None,
    options: dict,
) -> Context:
    parent = get_current_task()
    parent_request = parent.request if parent is not None else None
    parent_id = parent_request.id if parent_request is not None else None
    root_id = (parent_request.root_id if parent_request is not None else None) or task_id
    delivery_info: dict[str, Any] = {
        "is_eager": True,
        "exchange": options.get("exchange"),
        "routing_key": options.get("routing_key"),
        "priority": options.get("priority"),
    }
    stamped_headers = options.get("stamped_headers")
    if stamped_headers:  # as Celery's eager request: each stamp as a list
        names = [stamped_headers] if isinstance(stamped_headers, str) else list(stamped_headers)
        found = {name: _listed(options.get(name, [])) for name in names}
        headers_of_stamps: dict[str, Any] = {"stamped_headers": names, "stamps": found}
    else:
        headers_of_stamps = {}
    limits = (task.time_limit, task.soft_time_limit)  # the task's, not the call's: as Celery
    return Context(
        headers_of_stamps,
        id=task_id, task=task.name, args=args, kwargs=kwargs, retries=retries, is_eager=True,
        hostname=socket.gethostname(), headers=headers, called_directly=False,
        parent_id=parent_id, root_id=root_id, delivery_info=delivery_info,
        ignore_result=options.get("ignore_result", task.ignore_result), loglevel=0,
        logfile=None, timelimit=None if limits == (None, None) else list(limits),
        time_limit=limits[0], soft_time_limit=limits[1], utc=None,
        callbacks=links.as_list(options.get("link")),
        errbacks=links.as_list(options.get("link_error")),
    )  # fmt: skip


def _listed(value: Any) -> Any:
    """Celery's ``maybe_list``: a scalar in a list (None and lists, tuples kept)."""
    return [value] if value is not None and not isinstance(value, (list, tuple)) else value
