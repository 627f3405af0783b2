"""The project's tasks, shared with whichever app runs them."""

import threading

from celery import shared_task

#: Set by a test to let ``wait_for_go`` return.
go = threading.Event()


@shared_task
def add(x, y):
    return x + y


@shared_task
def refuse(reason):
    raise ValueError(reason)


@shared_task
def wait_for_go(timeout=10.0):
    return go.wait(timeout)
