"""The project's Celery module, unchanged: ``celery`` is the facade here."""

from celery import Celery

app = Celery("shimproj", broker="memory://", backend="memory://")
