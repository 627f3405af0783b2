"""The least Django setup for django-structlog's receivers; import it after the shim."""

import django
from django.conf import settings

settings.configure(INSTALLED_APPS=["django_structlog"], DJANGO_STRUCTLOG_CELERY_ENABLED=True)
django.setup()
