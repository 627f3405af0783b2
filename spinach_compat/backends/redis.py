"""Results in Redis, inside the engine's namespace, expiring after ``result_expires``.

A store is one script: it refuses to overwrite a SUCCESS, sets the value with its TTL and
publishes on the key's own channel, which ``AsyncResult.get`` listens to.
"""

from __future__ import annotations

from typing import Any

from .base import KeyValueBackend

_STORE = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' and meta['status'] == 'SUCCESS' then return 0 end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], '1')
return 1
"""


class RedisBackend(KeyValueBackend):
    """Results in Redis; ``get()`` waits on pub/sub, not by polling."""

    def __init__(self, app: Any, url: str):
        import redis

        super().__init__(app)
        self.client = redis.Redis.from_url(url)
        self._store = self.client.register_script(_STORE)

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
            pubsub.subscribe(key)
            pubsub.get_message(timeout=1.0)  # the subscription's confirmation
            if not ready():  # stored between our last read and the subscription
                pubsub.get_message(timeout=timeout)
        finally:
            pubsub.close()
