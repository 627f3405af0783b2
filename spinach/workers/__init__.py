"""Worker pools: where jobs run. Threads by default, or one asyncio loop; or greenlets
(``spinach.workers.gevent``, imported on its own: it needs gevent and its patching)."""

from .aio import AsyncioWorkers
from .base import Workers, advance_job_status
from .threads import ThreadWorkers

__all__ = ["AsyncioWorkers", "ThreadWorkers", "Workers", "advance_job_status"]
