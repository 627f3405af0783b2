"""Tasks on a third-party base class, through ``shared_task`` and ``app.task``."""

from celery import shared_task
from libtasks import LibTask

from .celery import app


@shared_task(bind=True, base=LibTask)
def flavour(self) -> str:
    return self.flavour


@app.task(base=LibTask)
def boom() -> None:
    raise ValueError("boom")
