#!/bin/sh
exec celery -A proj worker --pool="${CELERY_POOL:-threads}" -c 4
celery -A proj worker --pool="${CELERY_POOL}"
celery -A proj worker -P "${CELERY_POOL:-prefork}"
