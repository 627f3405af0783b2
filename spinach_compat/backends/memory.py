"""Results kept in this process, for tests and ``memory://`` apps."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from .. import states
from .base import KeyValueBackend, next_wait

if TYPE_CHECKING:
    from ..app.base import Celery


class MemoryBackend(KeyValueBackend):
    """Results in a dict; waiters sleep on a condition notified at each store."""

    def __init__(self, app: Celery):
        super().__init__(app)
        self._values: dict[str, tuple[str, float | None]] = {}
        self._changed = threading.Condition()

    def _get(self, key: str) -> str | None:
        with self._changed:
            entry = self._values.get(key)
            if entry is None:
                return None
            value, expires_at = entry
            if expires_at is not None and time.monotonic() >= expires_at:
                del self._values[key]
                return None
            return value

    def _set_unless_success(self, key: str, value: str) -> bool:
        with self._changed:  # reentrant: read and written as one step, as Redis's script
            current = self._get(key)
            if current is not None and json.loads(current)["status"] == states.SUCCESS:
                return False
            ttl = self.expires
            self._values[key] = (value, None if ttl is None else time.monotonic() + ttl)
            self._changed.notify_all()
        return True

    def _set(self, key: str, value: str) -> None:
        with self._changed:
            ttl = self.expires
            self._values[key] = (value, None if ttl is None else time.monotonic() + ttl)

    def _delete(self, key: str) -> None:
        with self._changed:
            self._values.pop(key, None)

    def wait_for(
        self, task_id: str, timeout: float | None = None, interval: float = 0.5
    ) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        found: dict[str, Any] = {}

        def ready() -> bool:
            found["meta"] = self.get_task_meta(task_id)
            return found["meta"]["status"] in states.READY_STATES

        with self._changed:  # reentrant: ready() reads under it too
            while not ready():
                self._changed.wait_for(ready, next_wait(deadline, interval))
        return found["meta"]
