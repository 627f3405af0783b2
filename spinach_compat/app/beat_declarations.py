"""Which worker declares which ``beat_schedule`` periodic task: the orphans stop firing.

The native engine keeps a namespace's periodic tasks until a worker registers them as not
periodic; a worker leaves alone those it does not know (another kind of worker may own
them). So an entry removed from ``beat_schedule``, or an app replaced by another with the
same ``main``, left its ``celery.beat:<entry>`` firing for ever, and the workers that do
not know it dead-lettered each firing.

Now each worker process declares, when it registers the schedule, the beat periodic tasks
it has (members ``<host>:<pid>:<app id>|<task name>`` of the broker's expiring set
``DECLARED``),
and drops those no live worker declares: a declaration counts while its process is among
the broker's live workers (same host and pid), or for ``GRACE`` seconds after it was made
(a worker declares before its engine starts and heartbeats). Declarations of dead
processes are removed at the same time. A beat process never registers native periodic
tasks: it sends its schedule itself.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from spinach.brokers.base import Broker
from spinach.task import Task

#: The broker's shared-state expiring set of declarations.
DECLARED = "celery_beat/declared"

#: Seconds a fresh declaration counts before its worker is seen alive: longer than a
#: worker's start; shorter drops an orphan sooner after a worker of another app starts.
GRACE = 120.0

#: Seconds a declaration is kept (its time is ``until - KEEP``): a worker running longer
#: without a restart has its periodic tasks dropped by the next worker starting.
KEEP = 365 * 86400.0

logger = logging.getLogger("spinach_compat.beat")


def declare_and_prune(
    broker: Broker, names: list[str], is_beat_task: Any, app_id: int = 0
) -> list[str]:
    """Declare ``names`` for this process's app ``app_id``; stop the beat periodic tasks
    (those for which ``is_beat_task(name)``) that no live worker declares; the names
    stopped."""
    me = f"{socket.gethostname()}:{os.getpid()}:{app_id}"
    now = broker.now()
    declared = set(names) | _live_declarations(broker, me, now)
    broker.add_members(DECLARED, {f"{me}|{name}": now + KEEP for name in names})
    orphans = sorted(
        name for _, name in broker.inspect_periodic_tasks()
        if is_beat_task(name) and name not in declared
    )  # fmt: skip
    if orphans:
        logger.warning("Periodic tasks no live worker declares any more, stopped: %s",
                       ", ".join(orphans))  # fmt: skip
        broker.register_periodic_tasks([Task(_orphan, name) for name in orphans])
    return orphans


def _live_declarations(broker: Broker, me: str, now: float) -> set[str]:
    """The names declared by other live (or freshly started) worker processes; the
    declarations of dead ones (and this process's previous ones) are removed."""
    live = {f"{w.hostname}:{w.pid}" for w in broker.workers()}
    names: set[str] = set()
    dropped: dict[str, float] = {}
    for member, until in broker.members(DECLARED).items():
        holder, _, name = member.partition("|")
        process = holder.rpartition(":")[0]
        if holder != me and (process in live or now - (until - KEEP) < GRACE):
            names.add(name)
        else:
            dropped[member] = now - 1  # an expired member is dropped
    if dropped:
        broker.add_members(DECLARED, dropped)
    return names


def _orphan() -> None:
    """The function of a dropped periodic task (never run: it is not periodic any more)."""
