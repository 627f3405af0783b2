"""Chords on workers: a counter per chord; the last header task to end sends the body.

``chord.apply_async`` stores the header's task ids under the chord's id and gives each
header job a descriptor (``meta["chord"]``: chord id, size, body signature). The ids and
the counter are in the broker's shared state, ``chord/<id>/ids`` and ``chord/<id>/count``
(with a Redis broker the keys ``{<namespace>}/chord/<id>/...``), expiring after
``result_expires``. Each header task increments the counter (atomically) once its final
state (success, failure, or REVOKED when discarded or terminated) is stored. The task that
brings it to the size reads the header results in order and sends the body with them, or,
when one failed (or reading them or sending the body failed), stores a ``ChordError`` as
the body's result and calls the body's errbacks (as Celery). The body's options are
checked when the chord is sent.

A header task grows its chord with ``Task.add_to_chord`` (``add``): the added task's
position (its adder's) and id join the expiring set ``chord/<id>/added`` before it is
sent, so the chord waits for it too; its value goes after the header values of positions
up to its adder's, tied values ordered by task id (as Celery's Redis backend orders them).
A group inside the header is inlined when the header is frozen (``group.freeze``), so the
body gets its values flat, as Celery's.
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


def _ids(app: Celery, chord_id: str) -> list[str] | None:
    (raw,) = app.engine.broker.get_values([_name(chord_id, "ids")])
    return json.loads(raw) if raw else None


def _count_and_ids(app: Celery, chord_id: str) -> tuple[int, list[str] | None, list]:
    """Increment the chord's counter; the new count, the header's ids and the added tasks
    (``[position, id]``), read after the increment: a task is added before its adder ends,
    so a count reaching the size plus the added ones read then is the last."""
    broker = app.engine.broker
    count = broker.increment(_name(chord_id, "count"), _ttl(app))
    added = [json.loads(member) for member in broker.members(_name(chord_id, "added"))]
    return count, _ids(app, chord_id), added


def _forget(app: Celery, chord_id: str) -> None:
    app.engine.broker.delete([_name(chord_id, part) for part in ("count", "ids", "added")])


def add(task: Task, sig: Any, lazy: bool) -> Any:
    """``Task.add_to_chord``: make ``sig`` a member of the chord of ``task``'s request,
    counted before it is sent; ``sig`` (``lazy``: the caller sends it) or its result."""
    from ..canvas import _Canvas
    from ..exceptions import UnsupportedFeature

    request = task.request
    descriptor = request.chord
    if not descriptor:
        raise ValueError("Current task is not member of any chord")
    if isinstance(sig, _Canvas):
        raise UnsupportedFeature(
            f"add_to_chord({sig!r}) in task {task.name} ({request.id}): only a task's "
            "signature can join a chord (Celery counts a group or chain as one task); add "
            "its tasks one by one"
        )
    app = app_of(task)
    position = _position(app, descriptor, request.id or "")
    sig.set(spinach_chord={**descriptor, "index": position}, root_id=request.root_id,
            ignore_result=False)  # fmt: skip
    result = sig.freeze()
    broker = app.engine.broker
    member = json.dumps([position, result.id])
    broker.add_members(_name(descriptor["id"], "added"), {member: broker.now() + _ttl(app)})
    return sig if lazy else sig.delay()


def _position(app: Celery, descriptor: dict, task_id: str) -> int:
    """The header position of a chord member: its own, or its adder's for an added task."""
    if "index" in descriptor:
        return int(descriptor["index"])
    ids = _ids(app, descriptor["id"]) or []
    return ids.index(task_id) if task_id in ids else len(ids)


def _ordered(ids: list[str], added: list) -> list[str]:
    """The header's ids and the added ones, by position, then (a tie) by id."""
    entries = [*enumerate(ids), *((int(position), task_id) for position, task_id in added)]
    return [task_id for _, task_id in sorted(entries)]


def on_part_return(task: Task, request: Context) -> None:
    """Count a header task's end; the last one sends the body, or fails it when a header
    task failed or the body could not be sent (never lost: its result is a ``ChordError``)."""
    descriptor = request.chord
    if descriptor is None:  # not a header task
        return
    app = app_of(task)
    count, ids, added = _count_and_ids(app, descriptor["id"])
    if ids is None or count != int(descriptor["size"]) + len(added):
        return
    _forget(app, descriptor["id"])
    body = _body(app, descriptor)
    try:
        values, failure = _gather(app, _ordered(ids, added))
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
