"""The app, and a ``task_received`` receiver printing the stamps each task arrives with."""

import json
import os

if os.environ.get("PROJ_IMPL") == "celery":
    from celery import Celery, signals
else:
    from spinach_compat import Celery, signals

URL = os.environ.get("PROJ_BROKER_URL", "memory://")

app = Celery("stamping", broker=URL, backend=URL, include=["tests.compat.stamping_proj.tasks"])
app.conf.update(
    task_default_queue="celery",
    worker_redirect_stdouts=False,
    broker_connection_retry_on_startup=True,
)


@signals.task_received.connect
def _show_stamps(sender=None, request=None, **kwargs):
    if getattr(request, "stamped_headers", None):
        print(f"received {request.id} stamps: {json.dumps(request.stamps, sort_keys=True)}")


@signals.worker_ready.connect
def _announce_ready(sender=None, **kwargs):
    os.write(1, b"PROJ-READY\n")
