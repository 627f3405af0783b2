#!/bin/sh
pip install celery redis django
mkdir -p /var/log/celery && chown celery /var/log/celery
su app -c "celery -A proj worker -P threads -c 2"
echo "skip celery check"
