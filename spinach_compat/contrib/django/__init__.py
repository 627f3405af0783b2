"""Celery's ``celery.contrib.django``: the task class of Django projects."""
