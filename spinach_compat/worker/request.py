"""Celery's worker request, as ``celery.worker.request``: importable, subclassable, not run.

Projects subclass ``Request`` and set it as ``Task.Request`` to hook ``on_failure``,
``on_timeout`` or ``on_success`` of the worker's side of a task (a worker lost, a hard time
limit). The facade's worker runs tasks without Celery's ``Request`` objects, so it could
not call such hooks: creating a ``Request`` raises ``UnsupportedFeature``, and a task whose
``Request`` is a custom class is refused when registered. The way out: the task's own
``on_failure`` (it sees ``TimeLimitExceeded`` too), or the ``task_failure`` signal.
"""

from __future__ import annotations

from typing import Any

from ..surface import module_getattr, refuse, refused_init

__all__ = ["Request"]

#: ``Task.Request`` values naming Celery's own request class: nothing custom to run.
DEFAULT_REQUESTS = ("celery.worker.request:Request", "spinach_compat.worker.request:Request")


class Request:
    """A task message being processed by Celery's worker: refused when created."""

    #: Whether the request was acknowledged.
    acknowledged = False
    time_start = None
    worker_pid = None
    time_limits = (None, None)

    __init__ = refused_init("celery.worker.request.Request")


def check_task_request(task_class: type) -> None:
    """Refuse a task class whose ``Request`` is custom (a class or a ``'module:Class'``).

    For ``Task`` to call when a task is bound: the worker would never use such a request,
    so its hooks would silently not run.
    """
    from ..app.context import Context

    value: Any = getattr(task_class, "Request", None)
    if value is None or value is Request or value is Context or value in DEFAULT_REQUESTS:
        return
    refuse("celery.worker.request.Request")


__getattr__ = module_getattr(__name__)
