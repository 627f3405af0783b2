"""The shared state of ``MemoryBroker`` (see ``Broker.claim`` and the methods after it).

Entries live in one dict per store, by full key, beside the namespaces (``flush`` leaves
them, as on Redis); each may carry the time it expires, read from the broker's clock, so
tests move time with a ``FakeClock`` instead of sleeping. An expired entry is dropped when
it is next looked at. The caller holds the store's lock around every call.

Published values (``Broker.publish_value``) go to the ``Inbox`` of each watch of their key.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_KINDS = {"value": str, "count": int, "members": dict, "hash": dict}


@dataclass
class _Entry:
    kind: str  #: one of ``_KINDS``
    data: Any
    expires: float | None = None  #: when it expires (broker clock), None: never


@dataclass(eq=False)
class Inbox:
    """The values published under the keys of one watch, oldest first."""

    keys: frozenset[str]
    values: deque[tuple[str, bytes]] = field(default_factory=deque)


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _status(value: str | bytes) -> Any:
    """The ``"status"`` of a value that is a JSON object, else None."""
    try:
        data = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    return data.get("status") if isinstance(data, dict) else None


class SharedEntries:
    """Claims, counters, values, expiring sets and hashes, by full key."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self.inboxes: set[Inbox] = set()  #: of the watches under way

    def _live(self, key: str, now: float) -> _Entry | None:
        """The entry at ``key`` unless it expired (then dropped)."""
        entry = self._entries.get(key)
        if entry is not None and entry.expires is not None and entry.expires <= now:
            del self._entries[key]
            return None
        return entry

    def _get(self, key: str, kind: str, now: float) -> _Entry | None:
        """The live entry at ``key``; a ``TypeError`` when it is of another kind (as
        Redis's WRONGTYPE; a value and a count are both text there)."""
        entry = self._live(key, now)
        if entry is not None and entry.kind != kind and {entry.kind, kind} != {"value", "count"}:
            raise TypeError(f"shared entry {key!r} holds a {entry.kind}, not a {kind}")
        return entry

    def _create(self, key: str, kind: str, now: float) -> _Entry:
        entry = self._get(key, kind, now)
        if entry is None or entry.kind != kind:
            entry = self._entries[key] = _Entry(kind, _KINDS[kind]())
        return entry

    def claim(self, key: str, ttl: float, now: float) -> bool:
        if self._live(key, now) is not None:
            return False
        self._entries[key] = _Entry("value", "1", now + ttl)
        return True

    def increment(self, key: str, ttl: float, by: int, now: float) -> int:
        entry = self._get(key, "count", now)
        count = (int(entry.data) if entry is not None else 0) + by
        self._entries[key] = _Entry("count", count, now + ttl)
        return count

    def set_values(self, values: Mapping[str, str], ttl: float, now: float) -> None:
        for key, value in values.items():
            self._entries[key] = _Entry("value", str(value), now + ttl)

    def get_value(self, key: str, now: float) -> str | None:
        raw = self.get_bytes(key, now)
        return None if raw is None else raw.decode("utf-8", errors="replace")

    def get_bytes(self, key: str, now: float) -> bytes | None:
        entry = self._get(key, "value", now)
        if entry is None:
            return None
        return _as_bytes(entry.data if entry.kind == "value" else str(entry.data))

    def publish(
        self, key: str, value: str | bytes, ttl: float | None, keep_status: str | None, now: float
    ) -> bool:
        """Store ``value`` unless the stored one has status ``keep_status``; deliver it to
        the inboxes watching ``key`` (see ``Broker.publish_value``)."""
        entry = self._get(key, "value", now)
        stored = entry.data if entry is not None and entry.kind == "value" else None
        if keep_status is not None and stored is not None and _status(stored) == keep_status:
            return _as_bytes(stored) == _as_bytes(value)  # kept: True if this same call's
        self._entries[key] = _Entry("value", value, None if ttl is None else now + ttl)
        for inbox in self.inboxes:
            if key in inbox.keys:
                inbox.values.append((key, _as_bytes(value)))
        return True

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    def add_members(self, key: str, until: Mapping[str, float], now: float) -> None:
        entry = self._create(key, "members", now)
        entry.data.update(until)
        entry.data = {member: at for member, at in entry.data.items() if at > now}
        if not entry.data:
            del self._entries[key]

    def members(self, key: str, now: float) -> dict[str, float]:
        entry = self._get(key, "members", now)
        return {} if entry is None else {m: at for m, at in entry.data.items() if at > now}

    def hash_set(self, key: str, field: str, value: str, ttl: float | None, now: float) -> None:
        entry = self._create(key, "hash", now)
        entry.data[field] = value
        if ttl is not None:
            entry.expires = now + ttl

    def hash_get(self, key: str, field: str, now: float) -> str | None:
        entry = self._get(key, "hash", now)
        return None if entry is None else entry.data.get(field)

    def hash_delete(self, key: str, field: str, now: float) -> None:
        entry = self._get(key, "hash", now)
        if entry is not None:
            entry.data.pop(field, None)
            if not entry.data:
                del self._entries[key]
