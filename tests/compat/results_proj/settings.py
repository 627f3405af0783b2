"""Django settings: django-celery-results installed, results in the database (or cache)."""

import os

SECRET_KEY = "not-secret: tests only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["testserver"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_celery_results",
]
if os.environ.get("RESULTS_WITHOUT_APP"):  # the mistake of forgetting it
    INSTALLED_APPS.remove("django_celery_results")
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.compat.results_proj.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["RESULTS_DB"],
        # Worker threads and the client write at once: each waits for the lock (up to 30
        # s) rather than failing at once with "database is locked", which SQLite answers
        # to two transactions that both read before they write (the database cache's
        # set(), django-celery-results' ChordCounter under Celery).
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
    }
}
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                "LOCATION": "results_cache"},
    "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}  # fmt: skip

CELERY_BROKER_URL = os.environ["RESULTS_BROKER_URL"]
CELERY_RESULT_BACKEND = os.environ.get("RESULTS_BACKEND", "django-db")
CELERY_CACHE_BACKEND = os.environ.get("RESULTS_CACHE", "default")
CELERY_RESULT_EXTENDED = os.environ.get("RESULTS_EXTENDED", "1") == "1"
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
