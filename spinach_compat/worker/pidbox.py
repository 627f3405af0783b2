"""A worker node's remote-control mailbox, in Celery's wire format.

Each facade worker node consumes Celery's broadcast mailbox (kombu's ``Mailbox`` named
``control_exchange``, ``celery`` by default: the fan-out exchange ``celery.pidbox``) on the
app's broker, in a thread of its own, so that Celery's clients (``celery inspect``, Flower,
``app.control`` of a real Celery app) and the facade's talk to it. kombu's ``Node`` does the
addressing (``destination``, ``pattern``/``matcher``), the ``ticket`` and the ``reply_to``;
the commands are ``spinach_compat.worker.control.Panel``'s, the reply ``{nodename: reply}``.

A ``memory://`` broker uses kombu's in-process memory transport, so in-process workers and
clients of one process talk too. The thread starts with the node's worker and stops with it,
within ``DRAIN_TIMEOUT`` plus a reconnection, deleting the node's queue (and its binding to
the exchange); a broker outage is logged and retried.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any

from kombu import Connection
from kombu.pidbox import Mailbox

from .control import Panel, State

if TYPE_CHECKING:
    from ..app.base import Celery
    from .consumer import NodeConsumer

logger = logging.getLogger("spinach_compat.worker.pidbox")

#: Seconds the mailbox thread waits for a message before looking whether it must stop.
#: Lower stops the worker sooner; each wait is one poll of the connection's socket (no
#: round trip to Redis).
DRAIN_TIMEOUT = 0.1

#: Seconds between polls of kombu's memory transport (``memory://``), also its wait before
#: looking whether to stop. Lower answers and stops sooner in-process; each poll is a look
#: at in-process queues (no network), so a few per second cost little CPU.
MEMORY_POLLING_INTERVAL = 0.02

#: Seconds before reconnecting after a broker error. Lower comes back sooner; higher spares
#: a broker in trouble.
RECONNECT_DELAY = 1.0


def mailbox(app: Celery) -> Mailbox:
    """Celery's broadcast mailbox of ``app``: the same exchange and serializer settings."""
    conf = app.conf
    return Mailbox(
        conf.get("control_exchange") or "celery", type="fanout",
        accept=list(conf.get("accept_content") or ["json"]),
        serializer=conf.get("task_serializer") or "json",
        queue_ttl=conf.get("control_queue_ttl", 300.0),
        reply_queue_ttl=conf.get("control_queue_ttl", 300.0),
        queue_expires=conf.get("control_queue_expires", 10.0),
        reply_queue_expires=conf.get("control_queue_expires", 10.0),
    )  # fmt: skip


def connection(app: Celery) -> Connection:
    """A new kombu connection to the app's broker for remote control (memory:// polled
    often enough for in-process replies)."""
    conn = app.connection_for_write()
    if conn.transport_cls == "memory":
        options = {**conn.transport_options, "polling_interval": MEMORY_POLLING_INTERVAL}
        conn = conn.clone(transport_options=options)
    return conn


class Pidbox:
    """The mailbox thread of one node: ``start()`` and ``stop()`` (both idempotent)."""

    def __init__(self, app: Celery, hostname: str, consumer: NodeConsumer):
        self.app = app
        self.hostname = hostname
        self.state = State(app, hostname, consumer)
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start consuming; returns once the node listens (or could not connect)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._listening.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"pidbox-{self.hostname}", daemon=True
        )
        self._thread.start()
        self._listening.wait(DRAIN_TIMEOUT * 8)

    def stop(self) -> None:
        """Stop consuming and wait for the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        thread.join()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._consume()
            except Exception as exc:
                logger.warning("Remote control of %s lost its broker connection (%s: %s): "
                               "reconnecting", self.hostname, type(exc).__name__, exc)  # fmt: skip
                self._listening.set()
                self._stopping.wait(RECONNECT_DELAY)

    def _consume(self) -> None:
        with connection(self.app) as conn:
            node = mailbox(self.app)(conn).Node(self.hostname, state=self.state,
                                                handlers=Panel.data)  # fmt: skip
            node.channel = conn.channel()
            queue = _forget_stale_commands(node, self.hostname)
            consumer = node.listen(callback=self._on_message(node))
            try:
                wait = MEMORY_POLLING_INTERVAL if conn.transport_cls == "memory" else DRAIN_TIMEOUT
                while not self._stopping.is_set():
                    listening = self._listening.is_set()
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=wait if listening else 0.01)
                    # the first wait subscribed (Redis's fan-out is PUBLISH/SUBSCRIBE)
                    self._listening.set()
            finally:
                _quietly(consumer.cancel)
                _quietly(lambda: _delete_queue(queue))
                _quietly(node.channel.close)

    def _on_message(self, node: Any) -> Any:
        def on_message(body: Any, message: Any) -> None:
            self.state.consumer.clock.forward()
            try:
                node.handle_message(body, message)
            except SystemExit:
                logger.warning("%s: shutdown requested by remote control", self.hostname)
            except Exception:
                logger.exception("Remote-control command %r failed", _method(body))

        return on_message


def _forget_stale_commands(node: Any, hostname: str) -> Any:
    """The node's queue (a kombu ``Queue`` bound to the channel), emptied before listening:
    on kombu's memory transport (one per process) a queue outlives its node, so commands
    sent to an earlier node of the same name (a ``shutdown``) would reach this one. On
    Redis the fan-out keeps nothing. The node deletes it when it stops (kombu's Redis
    channel deletes it on closing too; its memory channel never does)."""
    queue = node.mailbox.get_queue(hostname)(node.channel)
    queue.declare()
    discarded = queue.purge()
    if discarded:
        logger.debug("%s: %d remote-control commands sent before it started discarded",
                     hostname, discarded)  # fmt: skip
    return queue


def _delete_queue(queue: Any) -> None:
    """Delete the node's queue, then unbind it from the exchange: kombu's memory transport
    keeps both otherwise (its queues outlive the node; its ``queue_delete`` leaves the
    exchange's table, whose fan-out would make the queue again, and deletes nothing once
    the binding is gone, hence this order)."""
    queue.delete()
    queue.queue_unbind()


def _method(body: Any) -> Any:
    return body.get("method") if isinstance(body, dict) else body


def _quietly(call: Any) -> None:
    try:
        call()
    except Exception as exc:
        logger.debug("Ignored while closing the mailbox: %s", exc)
