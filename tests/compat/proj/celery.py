"""The project's app, on real Celery or on the facade (``PROJ_IMPL``)."""

import os

if os.environ.get("PROJ_IMPL") == "celery":
    from celery import Celery, signals
else:
    from spinach_compat import Celery, signals

URL = os.environ.get("PROJ_BROKER_URL", "memory://")

app = Celery("proj", broker=URL, backend=URL, include=["tests.compat.proj.tasks"])
app.conf.update(
    task_default_queue="celery",
    worker_redirect_stdouts=False,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)
if os.environ.get("PROJ_PREFETCH_SHORT_JOB") and os.environ.get("PROJ_IMPL") != "celery":
    app.conf.spinach_prefetch_short_job = float(os.environ["PROJ_PREFETCH_SHORT_JOB"])
if os.environ.get("PROJ_BEAT"):
    app.conf.beat_schedule = {
        "tick": {"task": "tests.compat.proj.tasks.tick", "schedule": 0.5, "args": ("beat",),
                 "options": {"expires": 30}},
    }  # fmt: skip


@signals.worker_ready.connect
def _announce_ready(sender=None, **kwargs):
    """Tell the test process the worker consumes (stdout, bypassing any redirection)."""
    os.write(1, b"PROJ-READY\n")


@signals.worker_shutdown.connect
def _announce_shutdown(sender=None, **kwargs):
    os.write(1, b"PROJ-SHUTDOWN\n")
