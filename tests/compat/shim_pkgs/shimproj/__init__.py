"""A project migrated with the one-line shim: its code still says ``import celery``."""

import spinach_compat

spinach_compat.install_as_celery()

from .celery import app  # noqa: E402  (after the shim, as the migration guide says)

__all__ = ["app"]
