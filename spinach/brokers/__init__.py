"""Brokers: where jobs wait and run. ``MemoryBroker`` in process, ``RedisBroker`` for real."""

from .base import Broker, DeadLetter, WorkerInfo
from .memory import MemoryBroker
from .redis_settings import RedisSettings

__all__ = ["Broker", "DeadLetter", "MemoryBroker", "RedisBroker", "RedisSettings", "WorkerInfo"]


def __getattr__(name: str):
    if name == "RedisBroker":  # imported lazily: a MemoryBroker user never loads redis-py
        from .redis import RedisBroker

        return RedisBroker
    raise AttributeError(name)
