"""A third-party task base built on Celery's public API, as OpenWISP's OpenwispCeleryTask.

It says ``from celery import Task``: loaded after ``install_as_celery()``, it subclasses the
facade's ``Task``.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Task


class LibTask(Task):
    """A custom attribute, and an ``on_failure`` hook recording what failed."""

    flavour = "from libtasks"
    failures: list[tuple[str, str]] = []  #: (task id, repr of the exception) per failure
    failed = threading.Event()  #: set by the hook (it runs after the result is stored)

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any):
        LibTask.failures.append((task_id, repr(exc)))
        LibTask.failed.set()
