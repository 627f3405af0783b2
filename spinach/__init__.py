"""Spinach: threaded background jobs on Redis.

>>> from spinach import Engine, MemoryBroker, Tasks
>>> tasks = Tasks()
>>> @tasks.task(name="add")
... def add(a, b):
...     return a + b
>>> spin = Engine(MemoryBroker())
>>> spin.attach_tasks(tasks)
>>> spin.execute("add", 1, 2)
3
"""

from typing import TYPE_CHECKING

from .brokers.base import Broker, DeadLetter, WorkerInfo
from .brokers.memory import MemoryBroker
from .call import Call, options
from .const import DEFAULT_NAMESPACE, DEFAULT_QUEUE, VERSION
from .context import current_job
from .engine import Engine
from .exc import AbortException, DeferException, RetryException
from .job import Job, JobStatus
from .task import Batch, Task, Tasks
from .workers import AsyncioWorkers, ThreadWorkers

if TYPE_CHECKING:  # imported lazily at run time (``__getattr__``)
    from .brokers.redis import RedisBroker

__version__ = VERSION

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_QUEUE",
    "AbortException",
    "AsyncioWorkers",
    "Batch",
    "Broker",
    "Call",
    "DeadLetter",
    "DeferException",
    "Engine",
    "Job",
    "JobStatus",
    "MemoryBroker",
    "RedisBroker",
    "RetryException",
    "Task",
    "Tasks",
    "ThreadWorkers",
    "WorkerInfo",
    "current_job",
    "options",
]


def __getattr__(name: str) -> type:
    if name == "RedisBroker":  # lazily, so a MemoryBroker user never imports redis-py
        from .brokers.redis import RedisBroker

        return RedisBroker
    raise AttributeError(f"module 'spinach' has no attribute {name!r}")
