"""A small project for the Celery interop tests, on real Celery or on the facade.

``INTEROP_IMPL=celery`` builds it on real Celery, else on ``spinach_compat``;
``INTEROP_URL`` is the Redis URL of the broker and the result backend.
"""

from .celery import app

__all__ = ["app"]
