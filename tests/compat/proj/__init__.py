"""A small Celery-style project run by real worker processes in the tests.

``PROJ_IMPL=celery`` builds it on real Celery, else on ``spinach_compat``: the same tasks
run on both, so the tests assert the same observable outcomes. ``PROJ_BROKER_URL`` is the
Redis URL of the broker and the result backend.
"""

from .celery import app

__all__ = ["app"]
