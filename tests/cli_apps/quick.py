"""A tiny engine for signal tests: it starts fast, and says when it is being loaded.

With ``QUICK_HOLD`` set, one job runs until the process ends (at most ``HOLD_LIMIT`` s).
"""

import logging
import os
import threading

from spinach import Engine, MemoryBroker

HOLD_LIMIT = 60.0
logger = logging.getLogger("cli_apps.quick")
logger.info("loading the quick app")

spin = Engine(MemoryBroker())


@spin.task(name="hold")
def hold() -> None:
    """Hold a worker thread: only a graceful stop (which waits for it) or an exit ends it."""
    logger.info("holding a worker")
    threading.Event().wait(HOLD_LIMIT)


if os.environ.get("QUICK_HOLD"):
    spin.schedule(hold)
