"""Priorities within a queue: a job of priority ``p`` (0 to 9, 0 the default and served
first, as in Celery and kombu) waits in its queue's band ``p``, a queue of its own named
``<queue>\\x06\\x16<p>`` (the default band is the queue itself). That is the naming of
kombu's Redis transport, which the Celery facade uses for its priority steps, so a facade
job of priority 6 is a native job of priority 6.

A worker consuming a queue takes its jobs band by band, in priority order, before those of
the next queue it consumes; the brokers look only at the bands that ever held a job.
"""

from __future__ import annotations

#: The separator of a queue and its band (kombu's).
SEP = "\x06\x16"
#: The priorities, most urgent first; the default is the first.
LEVELS = range(10)
DEFAULT = 0


def check_priority(task_name: str, priority: object) -> None:
    """Raise ``ValueError`` naming the task unless ``priority`` is None or 0 to 9."""
    if priority is None:
        return
    if not isinstance(priority, int) or isinstance(priority, bool) or priority not in LEVELS:
        raise ValueError(
            f"priority of task '{task_name}' must be None or an int from 0 (first, the "
            f"default) to 9 (last), not {priority!r}"
        )


def band(queue: str, priority: int | None) -> str:
    """The queue a job of ``priority`` sent to ``queue`` waits in."""
    return f"{queue}{SEP}{priority}" if priority else queue


def bands(queue: str) -> list[str]:
    """Every band of ``queue`` but the queue itself, in priority order."""
    return [band(queue, level) for level in LEVELS if level != DEFAULT]


def base(name: str) -> str:
    """The queue a band belongs to (a plain queue name is its own)."""
    return name.split(SEP, 1)[0]
