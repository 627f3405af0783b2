"""Django's database connections around each task a worker runs, as Celery's Django fix-up.

Worker threads live long and Django keeps one connection per thread: without care a
connection broken by the server (or older than ``CONN_MAX_AGE``) would fail the next task
of that thread, and every thread would keep one open forever. ``close_around_tasks()``
makes each task start and end as a Django request does: ``close_old_connections()`` before
and after it (``task_prerun``, ``task_postrun``), and the caches closed after it. Tasks run
eagerly (in the caller, perhaps inside its transaction) are left alone, as in Celery.

Celery closes the connections after every task whatever ``CONN_MAX_AGE`` says (unless
``CELERY_DB_REUSE_MAX``); here ``CONN_MAX_AGE`` decides, as for requests: 0 (Django's
default) closes them after each task, as Celery does.
"""

from __future__ import annotations

from typing import Any

from ... import signals

#: The ``dispatch_uid`` of the receivers (connected once per process).
UID = "spinach_compat.contrib.django.connections"


def close_around_tasks() -> None:
    """Connect the receivers (again: no effect)."""
    signals.task_prerun.connect(_before_task, weak=False, dispatch_uid=UID)
    signals.task_postrun.connect(_after_task, weak=False, dispatch_uid=UID)


def _eager(sender: Any) -> bool:
    return bool(getattr(getattr(sender, "request", None), "is_eager", False))


def _before_task(sender: Any = None, **kwargs: Any) -> None:
    from django.db import close_old_connections

    if not _eager(sender):
        close_old_connections()


def _after_task(sender: Any = None, **kwargs: Any) -> None:
    from django.core.cache import close_caches
    from django.db import close_old_connections

    if not _eager(sender):
        close_old_connections()
        close_caches()
