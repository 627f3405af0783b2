"""Results where Celery clients look: ``celery-task-meta-<id>``, in Celery's JSON layout.

Celery's Redis result backend keeps ``{"status", "result", "traceback", "children",
"date_done", "task_id"}`` under ``celery-task-meta-<id>`` for ``result_expires`` and
PUBLISHes the same value on a channel of the key's name, which ``AsyncResult.get()``
listens to: what ``Broker.publish_value`` does with an ``Unscoped`` name. Jobs that came
from Celery (their request carries ``CELERY_RESULT_HEADER``) store their states there too,
so unmodified Celery clients read them; ``AsyncResult`` of the facade reads there when its
own key is absent (tasks run by legacy Celery workers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kombu.serialization import dumps, loads
from kombu.utils import json as kombu_json

from spinach.brokers.base import Broker, Unscoped

from .. import states
from .message import CELERY_RESULT_HEADER

if TYPE_CHECKING:
    from ..app.context import Context

#: Celery's key prefix of results in Redis (``RedisBackend.task_keyprefix``).
KEY_PREFIX = "celery-task-meta-"


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
    """Writes Celery-format results through a broker's shared state, under ``Unscoped``
    names; the result backend reads them beside its own."""

    def __init__(self, broker: Broker):
        self.broker = broker

    def store(
        self, task_id: str, meta: dict[str, Any], ttl: float | None, serializer: str | None
    ) -> bool:
        """Store and publish (``Broker.publish_value``); a stored SUCCESS is never
        overwritten (JSON only: other formats cannot be read by the broker, and Celery's own
        check reads then writes). Whether stored."""
        value = celery_meta(meta, serializer)
        name = Unscoped(celery_key(task_id))
        return self.broker.publish_value(name, value, ttl, keep_status=states.SUCCESS)
