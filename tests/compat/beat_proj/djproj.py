"""The Celery app of the Django project, as django-celery-beat's documentation sets it up."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.compat.beat_proj.settings")

app = Celery("beatdj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
