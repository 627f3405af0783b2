"""One job that holds its worker until the test allows it to end.

The job writes ``started`` in the directory ``CLI_TEST_DIR`` names, then waits for the
test to create ``release`` there (giving up after ``RELEASE_DEADLINE`` seconds).
"""

import logging
import os
import time
from pathlib import Path

from spinach import Engine, MemoryBroker

RELEASE_DEADLINE = 60.0
logger = logging.getLogger("cli_apps.blocking")

spin = Engine(MemoryBroker())


@spin.task(name="hold")
def hold(directory: str) -> None:
    """Write the marker file, then wait for the release file."""
    (Path(directory) / "started").touch()
    logger.info("waiting for release")
    deadline = time.monotonic() + RELEASE_DEADLINE
    while not (Path(directory) / "release").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never released the job")
        time.sleep(0.01)
    logger.info("released")


spin.schedule(hold, os.environ["CLI_TEST_DIR"])
