"""Results where Celery clients look: ``celery-task-meta-<id>``, in Celery's JSON layout.

Celery's Redis result backend keeps ``{"status", "result", "traceback", "children",
"date_done", "task_id"}`` under ``celery-task-meta-<id>`` for ``result_expires`` and
PUBLISHes the same value on a channel of the key's name, which ``AsyncResult.get()``
listens to. Jobs that came from Celery (their request carries ``CELERY_RESULT_HEADER``)
store their states there too, so unmodified Celery clients read them; ``AsyncResult`` of
the facade reads there when its own key is absent (tasks run by legacy Celery workers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kombu.serialization import dumps, loads
from kombu.utils import json as kombu_json

from .message import CELERY_RESULT_HEADER

if TYPE_CHECKING:
    from ..app.context import Context

#: Celery's key prefix of results in Redis (``RedisBackend.task_keyprefix``).
KEY_PREFIX = "celery-task-meta-"

#: store: keep a Celery-format result unless a SUCCESS is stored, and publish it.
#:
#: KEYS[1] celery-task-meta-<id>  string  the task's meta, as JSON
#: ARGV[1] the meta, as JSON
#: ARGV[2] milliseconds to keep it, 0 to keep it forever
#: Returns 1 when stored, 0 when a SUCCESS was already there.
STORE = """
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
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""


def celery_key(task_id: str) -> str:
    return f"{KEY_PREFIX}{task_id}"


def wants_celery_result(request: Context | None) -> bool:
    """Whether the job of ``request`` came from Celery (its result goes to Celery too)."""
    return bool(request is not None and getattr(request, CELERY_RESULT_HEADER, False))


def celery_meta(meta: dict[str, Any], serializer: str | None = None) -> str | bytes:
    """The value Celery's Redis backend stores for ``meta``, encoded with ``serializer``
    (``result_serializer``; None: JSON) as Celery's ``backend.encode``; facade exceptions
    named as Celery's. Exceptions stay ``{exc_type, exc_message, exc_module}`` dicts, which
    Celery's clients rebuild whatever the serializer."""
    result = meta.get("result")
    if isinstance(result, dict) and result.get("exc_module") == "spinach_compat.exceptions":
        result = {**result, "exc_module": _celery_module(result.get("exc_type"))}
        meta = {**meta, "result": result}
    if serializer is None:
        return kombu_json.dumps(meta)
    return dumps(meta, serializer=serializer)[2]


def decode_celery_meta(
    raw: str | bytes, serializer: str | None, accept: frozenset[str]
) -> dict[str, Any]:
    """A meta Celery's backend stored, read as Celery's clients read it: with the app's
    ``result_serializer``, refused (``ContentDisallowed``) unless its type is accepted."""
    if serializer is None:
        return kombu_json.loads(raw)
    content_type, content_encoding, _ = dumps(None, serializer=serializer)
    return loads(raw, content_type, content_encoding, accept=accept)


def _celery_module(exc_type: Any) -> str:
    """``celery.exceptions`` when it has the class (so clients rebuild Celery's own)."""
    try:
        from celery import exceptions
    except ImportError:  # Celery is not installed here: its clients still find the name
        return "celery.exceptions"
    has_it = isinstance(exc_type, str) and hasattr(exceptions, exc_type)
    return "celery.exceptions" if has_it else "spinach_compat.exceptions"


class CeleryResults:
    """Writes Celery-format results; ``RedisBackend`` reads them beside its own."""

    def __init__(self, store: Callable[..., Any]):
        """``store``: a caller of the ``STORE`` script (``keys=``, ``args=``)."""
        self._store = store

    def store(
        self, task_id: str, meta: dict[str, Any], ttl: float | None, serializer: str | None
    ) -> bool:
        """Store and publish; a stored SUCCESS is never overwritten (JSON only: Lua cannot
        read other formats, and Celery's own check reads then writes). Whether stored."""
        milliseconds = 0 if ttl is None else max(1, int(ttl * 1000))
        value = celery_meta(meta, serializer)
        return bool(self._store(keys=[celery_key(task_id)], args=[value, milliseconds]))
