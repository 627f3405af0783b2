"""Django settings of a project keeping its periodic tasks in django-celery-beat's tables."""

import os

SECRET_KEY = "not-secret: tests only"
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django_celery_beat"]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["BEAT_DJANGO_DB"]}
}

CELERY_BROKER_URL = os.environ["BEAT_BROKER_URL"]
CELERY_BEAT_MAX_LOOP_INTERVAL = 0.5  # the DatabaseScheduler looks for changes this often
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
