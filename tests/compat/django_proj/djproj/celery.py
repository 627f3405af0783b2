"""The Celery app of the Django project, exactly as Celery's Django layout writes it."""

import os

from spinach_compat import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.compat.django_proj.djproj.settings")

app = Celery("djproj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
