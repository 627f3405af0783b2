"""The project's app, on real Celery or on the facade (``INTEROP_IMPL``)."""

import os

from .tasks import register

if os.environ.get("INTEROP_IMPL") == "celery":
    from celery import Celery, signals
else:
    from spinach_compat import Celery, signals

URL = os.environ.get("INTEROP_URL", "memory://")

app = Celery("interop", broker=URL, backend=URL)
app.conf.update(worker_redirect_stdouts=False, broker_connection_retry_on_startup=True)
register(app)

if os.environ.get("INTEROP_IMPL") != "celery" and URL.startswith("redis"):
    broker = app.engine.broker  # a killed worker's jobs are recovered within seconds
    broker.heartbeat_interval, broker.dead_worker_threshold = 0.5, 2.0
    broker.dead_worker_check_interval = 0.5


@signals.worker_ready.connect
def _announce_ready(sender=None, **kwargs):
    """Tell the test process the worker consumes (stdout, bypassing any redirection)."""
    os.write(1, b"PROJ-READY\n")
