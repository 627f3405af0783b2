"""``app.control.broadcast``: Celery's remote-control round trip, in Celery's wire format.

The command is published to the broadcast mailbox (kombu's ``Mailbox`` named
``control_exchange``: see ``spinach_compat.worker.pidbox``); each worker node it is meant
for (``destination``, or ``pattern`` with ``matcher``) runs it and replies ``{node: reply}``
to this caller's reply queue. So facade workers and real Celery workers on the same broker
both answer, and Celery's clients reach facade workers.

Collecting stops at ``limit`` replies, when ``timeout`` seconds pass without a reply, or
(unlike Celery, which always waits for the timeout) as soon as every live facade node meant
for the command replied, the broker's bookkeeping telling which are live: a call costs one
round trip, not ``timeout`` seconds. Pass ``limit`` to wait for other workers (Celery's)
that the bookkeeping does not know.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kombu import Consumer
from kombu.utils.uuid import uuid

from .control import node_of

if TYPE_CHECKING:
    from .base import Celery


def broadcast(
    app: Celery, command: str, arguments: dict, destination: Iterable[str] | None, *,
    reply: bool, timeout: float, limit: int | None, callback: Callable | None, pattern: Any,
    matcher: Any, connection: Any = None,
) -> list[dict] | None:  # fmt: skip
    """Send ``command`` with ``arguments``; with ``reply``, ``[{node: reply}, ...]``."""
    from ..worker.pidbox import connection as control_connection
    from ..worker.pidbox import mailbox

    destination = [destination] if isinstance(destination, str) else destination
    destination = None if destination is None else list(destination)
    conn = connection if connection is not None else control_connection(app)
    with conn:
        box = mailbox(app)(conn)
        ticket = uuid() if reply else None
        channel = conn.default_channel
        box._publish(
            command, arguments, destination=destination, reply_ticket=ticket, channel=channel,
            timeout=timeout, pattern=pattern, matcher=matcher,
        )  # fmt: skip
        if ticket is None:
            return None
        if limit is None and destination:
            limit = len(destination)
        expected = None if limit is not None else live_nodes(app, destination, pattern, matcher)
        return collect(box, ticket, timeout, limit, expected, callback)


def collect(
    box: Any, ticket: str, timeout: float, limit: int | None, expected: set[str] | None,
    callback: Callable | None,
) -> list[dict]:  # fmt: skip
    """The replies carrying ``ticket``, until ``limit`` came, the ``expected`` nodes all
    replied, or ``timeout`` seconds passed without a reply."""
    conn, replies, answered = box.connection, [], set[str]()

    def on_message(body: Any, message: Any) -> None:
        expires = message.headers.get("expires")
        if message.headers.get("ticket") != ticket or (expires and time.time() > expires):
            return
        if callback is not None:
            callback(body)
        replies.append(body)
        answered.update(body if isinstance(body, dict) else ())

    def done() -> bool:
        if limit is not None:
            return len(replies) >= limit
        return bool(expected) and expected <= answered  # type: ignore[operator]

    queue = box.reply_queue
    consumer = Consumer(conn.default_channel, [queue], accept=box.accept, no_ack=True,
                        callbacks=[on_message])  # fmt: skip
    try:
        with consumer:
            while not done():
                try:
                    conn.drain_events(timeout=timeout)
                except TimeoutError:
                    break
    finally:
        conn.default_channel.after_reply_message_received(queue.name)
    return replies


def live_nodes(app: Celery, destination: list[str] | None, pattern: Any, matcher: Any) -> set:
    """The facade nodes heartbeating in the app's namespace that the command is meant for."""
    from kombu.matcher import match

    broker = app.engine.broker
    oldest = broker.now() - broker.dead_worker_threshold
    nodes = {node_of(w.id) for w in broker.workers() if w.last_heartbeat >= oldest}
    if destination:
        nodes &= set(destination)
    elif pattern and matcher:
        nodes = {node for node in nodes if match(node, pattern, matcher)}  # type: ignore[arg-type]
    return nodes
