"""An example Celery project: the app is loaded with the package, as Celery's docs advise."""

from .celery import app

__all__ = ["app"]
