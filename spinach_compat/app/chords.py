"""Chords on workers: a counter per chord; the last header task to end sends the body.

``chord.apply_async`` stores the header's task ids under the chord's id and gives each
header job a descriptor (``meta["chord"]``: chord id, size, body signature). The ids and
the counter are in the broker's shared state, ``chord/<id>/ids`` and ``chord/<id>/count``
(with a Redis broker the keys ``{<namespace>}/chord/<id>/...``), expiring after
``result_expires``. Each header task increments the counter (atomically) once its final
state (success or failure) is stored. The task that brings it to the size reads the header results
in order and sends the body with them, or, when one failed (or reading them or sending the
body failed), stores a ``ChordError`` as the body's result and calls the body's errbacks
(as Celery). The body's options are checked when the chord is sent.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from .. import states
from .._state import app_of
from ..exceptions import ChordError
from .context import Context

if TYPE_CHECKING:
    from .base import Celery
    from .task import Task

logger = logging.getLogger("spinach_compat.trace")

#: Seconds the chord keys live when ``result_expires`` is None.
DEFAULT_TTL = 86400.0


def requires_backend(app: Celery) -> None:
    """Raise as Celery when the app has no result backend to read the header's results."""
    from ..backends.base import DisabledBackend

    if isinstance(app.backend, DisabledBackend):
        raise NotImplementedError(
            "Starting chords requires a result backend to be configured, but none "
            "is configured. Set result_backend (memory:// or redis://)."
        )


def _name(chord_id: str, part: str) -> str:
    """The broker's shared-state entry of a chord's ``count`` or header ``ids``."""
    return f"chord/{chord_id}/{part}"


def _ttl(app: Celery) -> int:
    return max(1, int(app.backend.expires or DEFAULT_TTL))


def start(app: Celery, chord_id: str, task_ids: list[str]) -> None:
    """Remember the header's task ids of a chord about to be sent."""
    app.engine.broker.set_values({_name(chord_id, "ids"): json.dumps(task_ids)}, _ttl(app))


def _count_and_ids(app: Celery, chord_id: str) -> tuple[int, list[str] | None]:
    """Increment the chord's counter; the new count and the header's ids."""
    broker = app.engine.broker
    count = broker.increment(_name(chord_id, "count"), _ttl(app))
    (raw,) = broker.get_values([_name(chord_id, "ids")])
    return count, json.loads(raw) if raw else None


def _forget(app: Celery, chord_id: str) -> None:
    app.engine.broker.delete([_name(chord_id, "count"), _name(chord_id, "ids")])


def on_part_return(task: Task, request: Context) -> None:
    """Count a header task's end; the last one sends the body, or fails it when a header
    task failed or the body could not be sent (never lost: its result is a ``ChordError``)."""
    descriptor = request.chord
    if descriptor is None:  # not a header task
        return
    app = app_of(task)
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
        failure = _send_body(body, values, request, descriptor["id"])
    if failure is not None:
        _fail_body(task, request, body, failure)


def _send_body(body: Any, values: list, request: Context, chord_id: str) -> ChordError | None:
    """Send the body with the header's values; the ``ChordError`` of a send that failed."""
    try:
        body.apply_async((values,), root_id=request.root_id)
    except Exception as exc:
        logger.exception("Chord callback for %r raised: %r", chord_id, exc)
        return ChordError(f"Callback error: {exc!r}")
    return None


def _gather(app: Celery, ids: list[str]) -> tuple[list, ChordError | None]:
    """The header's values in order, or the error of its first failed task."""
    values: list[Any] = []
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

    return maybe_signature(links.decode_one(descriptor["body"]), app=app)


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
