"""A small Celery-style project using the canvas corners (replace, chunks, map).

``PROJ_IMPL=celery`` builds it on real Celery, else on ``spinach_compat``;
``PROJ_BROKER_URL`` is the Redis URL of the broker and the result backend (see
``tests/compat/test_canvas_corners_worker.py``).
"""

from .celery import app

__all__ = ["app"]
