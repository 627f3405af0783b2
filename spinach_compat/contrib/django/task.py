"""``DjangoTask``: the base class of tasks in a Django project, as in Celery 5.4+.

Celery's Django fix-up makes it the app's task class when ``DJANGO_SETTINGS_MODULE`` is set
and the app is given no ``task_cls`` (the facade does the same, see
``spinach_compat.app.loader``). Its ``*_on_commit`` methods send the task once the current
database transaction commits (``django.db.transaction.on_commit``): never if it rolls back,
at once outside a transaction. They return None, as the task is not sent yet.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import transaction

from ...app.task import Task

__all__ = ["DjangoTask"]


class DjangoTask(Task):
    """A task that can be sent when the current database transaction commits."""

    def delay_on_commit(self, *args: Any, **kwargs: Any) -> None:
        """``delay(*args, **kwargs)`` once the transaction commits."""
        transaction.on_commit(functools.partial(self.delay, *args, **kwargs))

    def apply_async_on_commit(self, *args: Any, **kwargs: Any) -> None:
        """``apply_async(*args, **kwargs)`` once the transaction commits."""
        transaction.on_commit(functools.partial(self.apply_async, *args, **kwargs))
