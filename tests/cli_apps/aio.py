"""An Engine named ``engine`` (not ``spin``) with a coroutine task, for ``--asyncio``."""

import asyncio
import logging

from spinach import Engine, MemoryBroker

logger = logging.getLogger("cli_apps.aio")

engine = Engine(MemoryBroker())


@engine.task(name="nap")
async def nap(n: int) -> int:
    """Await something, so the job really runs on the event loop."""
    await asyncio.sleep(0)
    logger.info("nap %d awaited on the event loop", n)
    return n


for n in (1, 2):
    engine.schedule(nap, n)
