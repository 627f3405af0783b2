"""A facade project whose broker may be down at start (``STARTUP_BROKER_URL``): at most
``STARTUP_MAX_RETRIES`` attempts (default 3; 0 = forever), with tiny waits between them."""

import logging
import os

from spinach_compat import Celery

logger = logging.getLogger("startup_proj")

app = Celery("startup", broker=os.environ.get("STARTUP_BROKER_URL", "memory://"))
app.conf.update(
    broker_connection_max_retries=int(os.environ.get("STARTUP_MAX_RETRIES", "3")),
    broker_transport_options={"interval_start": 0.01, "interval_step": 0.01, "interval_max": 0.05},
    worker_redirect_stdouts=False,
)


@app.task(name="startup.note")
def note(text: str) -> None:
    logger.warning("noted %s", text)
