"""Results in Redis, inside the engine's namespace, expiring after ``result_expires``.

A store is one script: it refuses to overwrite a SUCCESS, sets the value with its TTL and
publishes on the key's own channel, which ``AsyncResult.get`` listens to.

Celery interop (``spinach_compat.interop.results``): jobs that came from Celery's queues
also store their states under Celery's ``celery-task-meta-<id>``, and a task id without a
result here is looked up there (a task run by a legacy Celery worker).
"""

from __future__ import annotations

from typing import Any

from kombu.utils import json as kombu_json

from ..interop.results import STORE, CeleryResults, celery_key, wants_celery_result
from .base import KeyValueBackend


class RedisBackend(KeyValueBackend):
    """Results in Redis; ``get()`` waits on pub/sub, not by polling."""

    def __init__(self, app: Any, url: str):
        import redis

        super().__init__(app)
        self.client = redis.Redis.from_url(url)
        self._store = self.client.register_script(STORE)  # publishes the meta on its key
        self.celery_results = CeleryResults(self.client)

    # -- Celery interop (see spinach_compat.interop.results) ------------------------------

    def store_result(
        self, task_id: str, result: Any, state: str, traceback: str | None = None,
        request: Any = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Store as every backend; for a job that came from Celery, in Celery's key too."""
        stored = super().store_result(task_id, result, state, traceback, request, **kwargs)
        if wants_celery_result(request):
            self.celery_results.store(task_id, state, stored, traceback, self.expires)
        return stored

    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        """The meta of ``task_id``: ours, else the one a Celery worker stored."""
        raw = self._get(self.key(task_id))
        if raw is None:
            raw = self.celery_results.get(task_id)
        if raw is None:
            return super().get_task_meta(task_id)  # PENDING
        return kombu_json.loads(raw)

    def _get(self, key: str) -> str | None:
        value = self.client.get(key)
        return value.decode() if isinstance(value, bytes) else value

    def _set_unless_success(self, key: str, value: str) -> bool:
        ttl = self.expires
        milliseconds = 0 if ttl is None else max(1, int(ttl * 1000))
        return bool(self._store(keys=[key], args=[value, milliseconds]))

    def _delete(self, key: str) -> None:
        self.client.delete(key)

    def _wait_for_change(self, key: str, ready: Any, timeout: float) -> None:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(key, celery_key(key.rpartition("/result/")[2]))
            pubsub.get_message(timeout=1.0)  # the subscriptions' confirmations
            pubsub.get_message(timeout=1.0)
            if not ready():  # stored between our last read and the subscription
                pubsub.get_message(timeout=timeout)
        finally:
            pubsub.close()
