"""The Celery app, as django-celery-results' documentation sets it up (``import celery``:
real Celery, or the facade under the import shim)."""

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.compat.results_proj.settings")

app = Celery("resultsproj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["tests.compat.results_proj"])


@worker_ready.connect
def _announce_ready(**kwargs):
    """Tell the test the worker consumes (the line it waits for, on the real stdout: Celery's
    worker makes ``print`` a log line)."""
    os.write(1, b"PROJ-READY\n")
