"""Worker pools: where jobs run. Threads by default, or one asyncio loop."""

from .aio import AsyncioWorkers
from .base import Workers, advance_job_status
from .threads import ThreadWorkers

__all__ = ["AsyncioWorkers", "ThreadWorkers", "Workers", "advance_job_status"]
