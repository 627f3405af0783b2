"""``app.control.broadcast``: Celery's remote-control commands, without a broadcast.

Celery sends each command to every worker over a fan-out exchange and collects their
replies. Here the commands act through the broker (revocations and terminate requests are
stored where every worker reads them, inspection reads the broker's bookkeeping), and the
reply of each live worker (``Inspect``'s view) is made in the caller, in Celery's shape:
``[{node name: reply}, ...]``. Commands that would change a running worker (``rate_limit``,
``shutdown``, ``pool_grow``, ``add_consumer``, ...) and unknown ones raise
``UnsupportedFeature``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..exceptions import UnsupportedFeature

if TYPE_CHECKING:
    from .base import Celery

#: Inspect commands answered per worker by ``Inspect`` (Celery's ``dump_*`` aliases too).
INSPECT_COMMANDS = {
    "ping": "ping", "active": "active", "dump_active": "active", "scheduled": "scheduled",
    "dump_schedule": "scheduled", "reserved": "reserved", "dump_reserved": "reserved",
    "registered": "registered", "dump_tasks": "registered", "stats": "stats",
    "active_queues": "active_queues",
}  # fmt: skip


def broadcast(
    app: Celery, command: str, arguments: dict, destination: Iterable[str] | None, *,
    reply: bool, limit: int | None, callback: Callable | None, pattern: Any, matcher: Any,
) -> list[dict] | None:  # fmt: skip
    """Do ``command`` with ``arguments``; with ``reply``, each live worker's reply."""
    if pattern is not None or matcher is not None:
        raise UnsupportedFeature(
            "broadcast(pattern=..., matcher=...) is not supported by spinach_compat: name the "
            "workers in destination (see migration_guide/features.md#control-and-inspection)"
        )
    destination = [destination] if isinstance(destination, str) else destination
    if command in INSPECT_COMMANDS:
        inspect = app.control.inspect(destination)
        replies = getattr(inspect, INSPECT_COMMANDS[command])() or {}
    elif command in ("revoke", "terminate"):
        replies = _revoke(app, command, destination, **arguments)
    else:
        raise UnsupportedFeature(
            f"app.control.broadcast({command!r}) is not supported by spinach_compat: the "
            f"supported commands are revoke, terminate, {', '.join(INSPECT_COMMANDS)} "
            "(see migration_guide/features.md#control-and-inspection)"
        )
    if not reply:
        return None
    answers = [{node: answer} for node, answer in replies.items()][:limit]
    if callback is not None:
        for answer in answers:
            callback(answer)
    return answers


def _revoke(
    app: Celery, command: str, destination: Iterable[str] | None, task_id: Any,
    terminate: bool = False, signal: Any = None, **_: Any,
) -> dict[str, Any]:  # fmt: skip
    """Revoke (and terminate); the reply of each live worker, as Celery's worker makes it."""
    control = app.control
    ids = [task_id] if isinstance(task_id, str) else list(task_id)
    terminate = terminate or command == "terminate"
    running = control.running_ids() if terminate else {}
    control.revoke(ids, terminate=terminate, signal=signal)
    nodes = list(control.inspect(destination).ping() or {})
    if not terminate:
        return {node: {"ok": f"tasks {set(ids)} flagged as revoked"} for node in nodes}
    replies = {}
    for node in nodes:
        here = [one for one in ids if running.get(one) == node]
        replies[node] = {"ok": f"terminate: {', '.join(here) if here else 'tasks unknown'}"}
    return replies
