"""The broker an integration's settings name: a ``Broker``, or a URL to build one from.

Shared by the Flask and Django integrations, so both accept the same values and refuse bad
ones alike, naming the setting.
"""

from __future__ import annotations

from ..brokers.base import Broker
from ..brokers.memory import MemoryBroker

#: URL schemes a broker setting accepts, each built by ``RedisBroker(url)``.
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
#: The scheme of an in-process ``MemoryBroker`` (tests, eager use): ``memory://``.
MEMORY_SCHEME = "memory"


def broker_from_setting(value: object, setting: str, where: str) -> Broker:
    """The broker ``value`` (of ``setting``, in ``where``) is or names.

    Raises ``ValueError`` naming the setting and the fix when it is missing or unusable.
    """
    if isinstance(value, Broker):
        return value
    example = "a Broker or a URL such as redis://localhost:6379/0"
    if value is None:
        raise ValueError(f"{setting} is not set in {where}: set it to {example}")
    if not isinstance(value, str):
        raise ValueError(f"{setting} in {where} must be {example}, not {value!r}")
    scheme = value.partition("://")[0].lower() if "://" in value else ""
    if scheme == MEMORY_SCHEME:
        return MemoryBroker()
    if scheme in REDIS_SCHEMES:
        from ..brokers.redis import RedisBroker  # redis-py only when a URL asks for it

        return RedisBroker(value)
    known = ", ".join(f"{s}://" for s in (*REDIS_SCHEMES, MEMORY_SCHEME))
    raise ValueError(
        f"{setting} in {where} has an unknown URL scheme {scheme or '(none)'!r} in "
        f"{value!r}: use one of {known}"
    )
