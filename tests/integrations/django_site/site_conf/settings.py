"""Settings of the test project; the test sets the broker, the database and the apps."""

import os
from datetime import timedelta

SECRET_KEY = "test-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "spinach.contrib.spinachd",
    "notes",
]
INSTALLED_APPS += [app for app in os.environ.get("EXTRA_APPS", "").split(",") if app]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["DB_PATH"]}}
SPINACH_BROKER = os.environ["SPINACH_BROKER"]
SPINACH_NAMESPACE = "django-site"
SPINACH_CLEAR_SESSIONS_PERIODICITY = timedelta(hours=1)
EMAIL_BACKEND = "spinach.contrib.spinachd.mail.BackgroundEmailBackend"
SPINACH_ACTUAL_EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ.get("EMAIL_DIR", "/nonexistent")
