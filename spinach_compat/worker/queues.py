"""Which queues a worker consumes, as Celery's ``celery worker`` decides.

Without ``-Q``, a Celery worker consumes the queues declared in ``task_queues`` (their
names), else ``task_default_queue`` alone: never a queue that tasks are only routed to, so
queues kept for dedicated workers (``-Q emails``) are not drained by the others. ``-Q``
names the queues to consume instead; a name not declared is created when
``task_create_missing_queues`` is on (the default), else refused as Celery refuses it.
``-X`` then takes names out. Priority bands follow their queue (see ``app.priority``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..app.routes import queue_name
from ..exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from ..app.base import Celery


def declared_queues(app: Celery) -> list[str]:
    """The names in ``task_queues`` (Queues, names, or a mapping), else the default queue."""
    queues = app.conf.task_queues or ()
    names = list(queues) if isinstance(queues, Mapping) else [queue_name(q) for q in queues]
    return list(dict.fromkeys(names)) or [app.conf.task_default_queue]


def worker_queues(
    app: Celery, include: Iterable[str] | None = None, exclude: Iterable[str] = ()
) -> list[str]:
    """The queues a worker consumes: ``include`` (``-Q``) else the declared ones, without
    ``exclude`` (``-X``)."""
    declared = declared_queues(app)
    include = list(dict.fromkeys(include or ()))
    if include and not app.conf.task_create_missing_queues:
        unknown = [name for name in include if name not in declared]
        if unknown:
            raise ImproperlyConfigured(
                f"Trying to select queue subset of {include!r}, but queue {unknown[0]!r} "
                "isn't defined in the `task_queues` setting (enable "
                "task_create_missing_queues to consume queues not declared there)"
            )
    excluded = set(exclude)
    return [name for name in include or declared if name not in excluded]
