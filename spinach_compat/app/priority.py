"""Message priorities as Celery's Redis transport emulates them: one queue per band.

kombu's Redis transport keeps, for each queue, one list per priority step (``priority_steps``
transport option, default ``(0, 3, 6, 9)``); a message of priority ``p`` (clamped to 0..9,
0 when unset) goes to the list of the greatest step not above ``p``, named ``<queue>`` for
step 0 and ``<queue>\\x06\\x16<step>`` otherwise; workers pop the steps in increasing order,
so a lower number is a higher priority. The facade uses the very same names for its native
queues (as ``spinach_compat.interop`` does for Celery's lists): a job of priority 7 sent to
``emails`` waits in the native queue ``'emails\\x06\\x166'``, and a worker consuming
``emails`` consumes ``emails``, ``emails\\x06\\x163``, ``emails\\x06\\x166``,
``emails\\x06\\x169`` in that order.
"""

from __future__ import annotations

from bisect import bisect
from collections.abc import Iterable, Sequence
from typing import Any

#: kombu's default priority steps, and the separator of a queue and its step.
PRIORITY_STEPS: tuple[int, ...] = (0, 3, 6, 9)
PRIORITY_SEP = "\x06\x16"
MIN_PRIORITY, MAX_PRIORITY = 0, 9


def priority_steps(conf: Any) -> tuple[int, ...]:
    """The steps of ``broker_transport_options['priority_steps']``, else kombu's."""
    options = conf.get("broker_transport_options") or {}
    steps = options.get("priority_steps") or PRIORITY_STEPS
    return tuple(sorted(int(step) for step in steps))


def band_of(priority: int | None, steps: Sequence[int] = PRIORITY_STEPS) -> int:
    """The step whose list carries a message of ``priority`` (kombu's rule)."""
    try:
        value = max(min(int(priority), MAX_PRIORITY), MIN_PRIORITY)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = MIN_PRIORITY
    return steps[max(bisect(steps, value) - 1, 0)]


def band_queue(queue: str, priority: int | None, steps: Sequence[int] = PRIORITY_STEPS) -> str:
    """The native queue of a message of ``priority`` sent to ``queue``."""
    step = band_of(priority, steps)
    return f"{queue}{PRIORITY_SEP}{step}" if step else queue


def base_queue(name: str) -> str:
    """The queue a band queue belongs to (a plain queue name is its own)."""
    return name.split(PRIORITY_SEP, 1)[0]


def band_queues(queues: Iterable[str], steps: Sequence[int] = PRIORITY_STEPS) -> list[str]:
    """Every band of ``queues`` in consuming order: step-major, as kombu's BRPOP keys.

    A name that already is a band queue is kept as it is.
    """
    queues = list(dict.fromkeys(queues))
    names = [
        queue if PRIORITY_SEP in queue else band_queue(queue, step, steps)
        for step in steps
        for queue in queues
    ]
    return list(dict.fromkeys(names))
