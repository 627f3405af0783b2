"""The Django project package; its Celery app lives in ``celery.py``."""
