#!/bin/sh
celery -A proj inspect ping -t 10 -d "celery@$(hostname)"
celery -A proj inspect active --timeout 5 --destination worker1@host
