"""The project's app, on real Celery or on the facade (``PROJ_IMPL``)."""

import os

if os.environ.get("PROJ_IMPL") == "celery":
    from celery import Celery, signals
else:
    from spinach_compat import Celery, signals

URL = os.environ.get("PROJ_BROKER_URL", "memory://")

app = Celery("canvas_proj", broker=URL, backend=URL, include=["tests.compat.canvas_proj.tasks"])
app.conf.update(
    task_default_queue="celery",
    worker_redirect_stdouts=False,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)


@signals.worker_ready.connect
def _announce_ready(sender=None, **kwargs):
    """Tell the test process the worker consumes (stdout, bypassing any redirection)."""
    os.write(1, b"PROJ-READY\n")
