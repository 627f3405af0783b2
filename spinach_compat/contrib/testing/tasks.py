"""The task a starting test worker runs to prove it serves tasks (``celery.ping``)."""

from __future__ import annotations

from ...app import shared_task


@shared_task(name="celery.ping")
def ping() -> str:
    """Answer ``'pong'``."""
    return "pong"
