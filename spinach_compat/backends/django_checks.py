"""What the Django result backends need before their first use, each refused with a message
naming the setting, the cause and the fix (``ImproperlyConfigured``: the worker command
prints it on one line and exits 1 before fetching any job, instead of failing every job).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..exceptions import ImproperlyConfigured

#: Where the Django backends are documented.
GUIDE = "migration_guide/features.md#django-celery-results"


def refuse(alias: str, cause: str) -> ImproperlyConfigured:
    """The error of ``result_backend=alias`` failing for ``cause``."""
    return ImproperlyConfigured(f"result_backend={alias!r}: {cause} (see {GUIDE})")


def require_django(alias: str) -> None:
    """Django installed, configured and set up (its app registry ready)."""
    try:
        from django.apps import apps
        from django.conf import settings
    except ImportError:
        raise refuse(alias, "Django is not installed") from None
    if not settings.configured:
        raise refuse(alias, "Django is not configured: set DJANGO_SETTINGS_MODULE")
    if not apps.ready:
        raise refuse(
            alias, "Django is not set up yet: call django.setup() before using results "
            "(the worker does it when DJANGO_SETTINGS_MODULE is set)",
        )  # fmt: skip


def require_results_app(alias: str) -> None:
    """``django_celery_results`` in ``INSTALLED_APPS`` (its models hold the results)."""
    from django.apps import apps

    if not apps.is_installed("django_celery_results"):
        raise refuse(
            alias, "add 'django_celery_results' to INSTALLED_APPS (pip install "
            "django-celery-results), then run `python manage.py migrate django_celery_results`",
        )  # fmt: skip


def require_tables(alias: str, models: Iterable[Any], fix: str) -> None:
    """The tables of ``models`` exist in their databases, else name the first missing one
    and ``fix``. A connection opened for the check is closed again (a worker forks after)."""
    from django.db import connections, router

    for model in models:
        table = model._meta.db_table
        if table not in _table_names(connections[router.db_for_write(model)]):
            raise refuse(alias, f"the table {table} does not exist: {fix}")


def require_table(alias: str, database: str, table: str, fix: str) -> None:
    """``table`` exists in the database ``database``, else name it and ``fix``."""
    from django.db import connections

    if table not in _table_names(connections[database]):
        raise refuse(alias, f"the table {table} does not exist: {fix}")


def _table_names(connection: Any) -> list[str]:
    opened = connection.connection is None
    try:
        with connection.cursor() as cursor:
            return list(connection.introspection.table_names(cursor))
    finally:
        if opened and not connection.in_atomic_block:
            connection.close()
