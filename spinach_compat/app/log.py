"""Logging of the app, as ``celery.app.log``: the task-aware ``TaskFormatter``."""

from __future__ import annotations

import logging

from .._state import get_current_task
from ..surface import module_getattr
from ..utils.log import ColorFormatter

__all__ = ["TaskFormatter"]


class TaskFormatter(ColorFormatter):
    """A formatter with ``%(task_id)s`` and ``%(task_name)s`` of the running task.

    Outside a task both are ``???`` (unless the record has its own), as in Celery.
    """

    def format(self, record: logging.LogRecord) -> str:
        task = get_current_task()
        request = task.request if task is not None else None
        if task is not None and request is not None and getattr(request, "id", None) is not None:
            record.__dict__.update(task_id=request.id, task_name=task.name)
        else:
            record.__dict__.setdefault("task_name", "???")
            record.__dict__.setdefault("task_id", "???")
        return super().format(record)


__getattr__ = module_getattr(__name__)
