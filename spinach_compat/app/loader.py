"""Importing the modules of an app, as Celery's loader: ``imports``, ``include``, and the
packages given to ``autodiscover_tasks``, when a worker starts (or when asked)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Celery


class Loader:
    """``app.loader``: imports the modules a worker needs, once."""

    def __init__(self, app: Celery):
        self.app = app
        self.pending_autodiscover: list[tuple[Any, str]] = []

    def import_default_modules(self) -> list[Any]:
        """Import ``imports`` and ``include``, then run pending ``autodiscover_tasks``."""
        conf = self.app.conf
        setup_django()
        modules = [importlib.import_module(name) for name in (*conf.imports, *conf.include)]
        while self.pending_autodiscover:
            packages, related_name = self.pending_autodiscover.pop(0)
            modules += autodiscover(packages, related_name)
        return modules

    import_task_modules = import_default_modules

    def import_task_module(self, module: str) -> Any:
        """Import the module ``module`` (its tasks register as it is imported)."""
        return importlib.import_module(module)


def autodiscover(packages: Iterable[str] | Callable | None, related_name: str) -> list[Any]:
    """Import ``<package>.<related_name>`` of each package that has one.

    ``packages`` may be a callable returning them; None means Django's installed apps when
    Django is configured (as Celery's Django fix-up), else nothing.
    """
    names = packages() if callable(packages) else packages
    if names is None:
        names = _django_apps()
    found = []
    for package in names:
        try:
            found.append(importlib.import_module(f"{package}.{related_name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.{related_name}":
                raise
    return found


#: The base class of tasks under Django, as Celery's Django fix-up makes it.
DJANGO_TASK_CLS = "spinach_compat.contrib.django.task:DjangoTask"


def django_task_cls() -> str | None:
    """``DJANGO_TASK_CLS`` when Celery's Django fix-up applies (``DJANGO_SETTINGS_MODULE``
    set and Django installed), else None: apps given no ``task_cls`` then make tasks with
    ``delay_on_commit`` and ``apply_async_on_commit``."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return None
    try:
        import django  # noqa: F401
    except ImportError:
        return None
    return DJANGO_TASK_CLS


def setup_django() -> None:
    """Set Django up, as Celery's Django fix-up does when a worker starts, if the process
    names a settings module (``DJANGO_SETTINGS_MODULE``) and Django is not set up yet:
    tasks modules of Django apps import models, which needs the app registry ready. Tasks
    run by workers then start and end with ``close_old_connections()``, as requests do
    (``spinach_compat.contrib.django.connections``)."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return
    try:
        import django
        from django.apps import apps
    except ImportError:
        return
    if not apps.ready:
        django.setup()
    from ..contrib.django.connections import close_around_tasks

    close_around_tasks()


def _django_apps() -> list[str]:
    try:
        from django.apps import apps
        from django.conf import settings
    except ImportError:
        return []
    if not settings.configured:
        return []
    return [config.name for config in apps.get_app_configs()]
