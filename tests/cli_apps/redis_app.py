"""An Engine named ``spin`` on the Redis of ``CLI_REDIS_URL``, with a task ``note`` that
logs its argument (for the broker-startup tests: the server may not run yet)."""

import logging
import os

from spinach import Engine, RedisBroker

logger = logging.getLogger("cli_apps.redis_app")

#: Quick reconnections inside one attempt: the startup retries are what the tests look at.
spin = Engine(
    RedisBroker(os.environ["CLI_REDIS_URL"], reconnect_base_delay=0.01, reconnect_max_delay=0.02),
    namespace="startup",
)


@spin.task(name="note")
def note(text: str) -> None:
    logger.info("noted %s", text)
