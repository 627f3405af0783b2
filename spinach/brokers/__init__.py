"""Brokers: where jobs wait and run. ``MemoryBroker`` in process, ``RedisBroker`` for real."""

from typing import TYPE_CHECKING

from .base import Broker, DeadLetter, Unscoped, Watch, WorkerInfo
from .memory import MemoryBroker
from .redis_settings import RedisSettings

if TYPE_CHECKING:  # imported lazily at run time (``__getattr__``)
    from .redis import RedisBroker

__all__ = [
    "Broker", "DeadLetter", "MemoryBroker", "RedisBroker", "RedisSettings", "Unscoped", "Watch",
    "WorkerInfo",
]  # fmt: skip


def __getattr__(name: str) -> type:
    if name == "RedisBroker":  # imported lazily: a MemoryBroker user never loads redis-py
        from .redis import RedisBroker

        return RedisBroker
    raise AttributeError(name)
