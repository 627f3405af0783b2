"""The tasks whose results are stored."""

import os
import threading

import redis
from celery import shared_task
from django.db.backends.signals import connection_created
from django.dispatch import receiver


@shared_task(name="results.add")
def add(x, y, scale=1):
    return (x + y) * scale


@shared_task(name="results.fail")
def fail(message):
    raise ValueError(message)


@shared_task(name="results.total")
def total(values):
    return sum(values)


@shared_task(name="results.opaque")
def opaque():
    """A return value JSON cannot carry: the result cannot be stored."""
    return object()


@shared_task(name="results.held")
def held(key):
    """Return once the client pushed to ``key`` (it waits for a listener first)."""
    client = redis.Redis.from_url(os.environ["RESULTS_BROKER_URL"])
    return client.blpop([key], timeout=30) is not None


_opened = threading.local()


@receiver(connection_created)
def _count_connection(**kwargs):
    _opened.count = getattr(_opened, "count", 0) + 1


@shared_task(name="results.connections_opened")
def connections_opened():
    """This worker thread (process:thread) and how many database connections it opened so
    far: each task opens one if the one before closed it after its end."""
    return f"{os.getpid()}:{threading.get_ident()}", getattr(_opened, "count", 0)
