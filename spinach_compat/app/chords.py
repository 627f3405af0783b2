"""Chords on workers: a counter per chord; the last header task to end sends the body.

``chord.apply_async`` stores the header's task ids under the chord's id and gives each
header job a descriptor (``meta["chord"]``: chord id, size, body signature). Each header
task increments the chord's counter once its final state (success or failure) is stored:
in Redis an atomic ``INCR`` on ``{<namespace>}/chord/<id>/count`` (with an expiry), in the
memory backend under a lock. The task that brings it to the size reads the header results
in order and sends the body with them, or, when one failed (or reading them or sending the
body failed), stores a ``ChordError`` as the body's result and calls the body's errbacks
(as Celery). The body's options are checked when the chord is sent.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

from .. import states
from ..exceptions import ChordError
from .context import Context

if TYPE_CHECKING:
    from .base import Celery
    from .task import Task

logger = logging.getLogger("spinach_compat.trace")

#: Seconds the chord keys live when ``result_expires`` is None.
DEFAULT_TTL = 86400.0

_lock = threading.Lock()
_memory: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def requires_backend(app: Celery) -> None:
    """Raise as Celery when the app has no result backend to count a chord with."""
    if not hasattr(app.backend, "key"):
        raise NotImplementedError(
            "Starting chords requires a result backend to be configured, but none "
            "is configured. Set result_backend (memory:// or redis://)."
        )


def _key(app: Celery, chord_id: str, part: str) -> str:
    return f"{{{app.namespace}}}/chord/{chord_id}/{part}"


def _ttl(app: Celery) -> int:
    return max(1, int(app.backend.expires or DEFAULT_TTL))


def start(app: Celery, chord_id: str, task_ids: list[str]) -> None:
    """Remember the header's task ids of a chord about to be sent."""
    backend = app.backend
    client = getattr(backend, "client", None)
    if client is not None:
        client.set(_key(app, chord_id, "ids"), json.dumps(task_ids), ex=_ttl(app))
        return
    with _lock:
        _memory.setdefault(backend, {})[chord_id] = [task_ids, 0]


def _count_and_ids(app: Celery, chord_id: str) -> tuple[int, list[str] | None]:
    """Increment the chord's counter; the new count and the header's ids."""
    backend = app.backend
    client = getattr(backend, "client", None)
    if client is not None:
        count_key = _key(app, chord_id, "count")
        pipe = client.pipeline()
        pipe.incr(count_key)
        pipe.expire(count_key, _ttl(app))
        pipe.get(_key(app, chord_id, "ids"))
        count, _, raw = pipe.execute()
        return int(count), json.loads(raw) if raw else None
    with _lock:
        entry = _memory.get(backend, {}).get(chord_id)
        if entry is None:
            return 0, None
        entry[1] += 1
        return entry[1], entry[0]


def _forget(app: Celery, chord_id: str) -> None:
    backend = app.backend
    client = getattr(backend, "client", None)
    if client is not None:
        client.delete(_key(app, chord_id, "count"), _key(app, chord_id, "ids"))
        return
    with _lock:
        _memory.get(backend, {}).pop(chord_id, None)


def on_part_return(task: Task, request: Context) -> None:
    """Count a header task's end; the last one sends the body, or fails it when a header
    task failed or the body could not be sent (never lost: its result is a ``ChordError``)."""
    descriptor = request.chord
    app = task._get_app()
    count, ids = _count_and_ids(app, descriptor["id"])
    if ids is None or count != int(descriptor["size"]):
        return
    _forget(app, descriptor["id"])
    body = _body(app, descriptor)
    try:
        values, failure = _gather(app, ids)
    except Exception as exc:  # as Celery: the body fails, the header task does not
        logger.exception("Chord %r raised: %r", descriptor["id"], exc)
        values, failure = [], ChordError(f"Join error: {exc!r}")
    if failure is None:
        failure = _send_body(body, values, request)
    if failure is not None:
        _fail_body(task, request, body, failure)


def _send_body(body: Any, values: list, request: Context) -> ChordError | None:
    """Send the body with the header's values; the ``ChordError`` of a send that failed."""
    try:
        body.apply_async((values,), root_id=request.root_id)
    except Exception as exc:
        logger.exception("Chord callback for %r raised: %r", request.chord["id"], exc)
        return ChordError(f"Callback error: {exc!r}")
    return None


def _gather(app: Celery, ids: list[str]) -> tuple[list, ChordError | None]:
    """The header's values in order, or the error of its first failed task."""
    values = []
    for task_id in ids:
        meta = app.backend.get_task_meta(task_id)
        if meta["status"] in states.PROPAGATE_STATES:
            exc = app.backend.exception_to_python(meta["result"])
            return values, ChordError(f"Dependency {task_id} raised {exc!r}")
        values.append(meta["result"])
    return values, None


def _body(app: Celery, descriptor: dict) -> Any:
    from ..canvas import maybe_signature
    from . import links

    return maybe_signature(links.decode([descriptor["body"]])[0], app=app)


def _fail_body(task: Task, request: Context, body: Any, exc: ChordError) -> None:
    """Store ``exc`` as the body's result and call (or send) the body's errbacks."""
    from . import links

    result = body.freeze()  # the ids given when the chord was sent
    body_id = result.id
    traceback = f"{type(exc).__name__}: {exc}"
    for failed in getattr(result, "results", None) or [result]:  # a group's: each member's
        task.backend.mark_as_failure(failed.id, exc, traceback)
    errbacks = links.as_list(body.options.get("link_error"))
    if errbacks:
        context = Context(
            id=body_id, task=body.name, root_id=request.root_id, delivery_info={},
            errbacks=errbacks, args=body.args, kwargs=body.kwargs, is_eager=False,
        )  # fmt: skip
        links.call_errbacks(task, context, exc, traceback)
