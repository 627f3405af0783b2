"""A tiny facade app for signal tests (memory broker): it starts fast.

With ``SIGNALS_PROJ_HOLD`` set, one task runs until the process ends (at most
``HOLD_LIMIT`` s).
"""

import logging
import os
import threading

from spinach_compat import Celery

HOLD_LIMIT = 60.0
logger = logging.getLogger("signals_proj")

app = Celery("signals_proj", broker="memory://")
app.conf.task_default_queue = "celery"


@app.task(name="hold")
def hold() -> None:
    """Hold a worker thread: only a warm shutdown (which waits for it) or an exit ends it."""
    logger.warning("holding a worker")
    threading.Event().wait(HOLD_LIMIT)


if os.environ.get("SIGNALS_PROJ_HOLD"):
    hold.delay()
