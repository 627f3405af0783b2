"""``--autoscale MAX,MIN``: grow and shrink the prefork children with the work waiting.

As Celery's autoscaler: the pool starts with MIN children; it grows (at once, up to MAX)
while jobs wait in the worker's queues and every child is busy, one child per waiting job;
it shrinks toward MIN (only idle children, each stopped gracefully) once nothing waited and
no child was added for ``keepalive`` seconds (Celery's ``AUTOSCALE_KEEPALIVE``, 30 s, read
from the same environment variable).

The decision is the pure function ``scale_by``; ``Autoscaler`` feeds it from the supervisor
(which children are busy, from their status pipes) and the broker (queue lengths), with an
injectable clock.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spinach.supervisor import Supervisor

logger = logging.getLogger("spinach_compat.worker.autoscale")

#: Seconds without waiting jobs before idle children are stopped (Celery's default, also
#: read from ``AUTOSCALE_KEEPALIVE``). Lower frees memory sooner; higher spares restarts
#: (each child imports the project again) under bursty load.
KEEPALIVE = float(os.environ.get("AUTOSCALE_KEEPALIVE", 30))

#: Seconds between looks at the queues while children are busy (Celery looks every second).
#: Lower grows sooner under load; each look costs one round trip to the broker.
INTERVAL = 1.0


@dataclass(frozen=True)
class Bounds:
    """``--autoscale MAX,MIN``."""

    maximum: int
    minimum: int


def parse_autoscale(text: str) -> Bounds:
    """``"10,3"`` (either order, as Celery sorts them) or ``"10"`` (MIN 0); ValueError else."""
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"expected MAX,MIN (two integers) or MAX, not {text!r}")
    try:
        numbers = sorted((int(part) for part in parts), reverse=True)
    except ValueError:
        raise ValueError(f"expected MAX,MIN (two integers) or MAX, not {text!r}") from None
    maximum, minimum = numbers[0], numbers[1] if len(numbers) == 2 else 0
    if maximum < 1 or minimum < 0:
        raise ValueError(f"MAX must be 1 or more and MIN 0 or more, not {text!r}")
    return Bounds(maximum, minimum)


def scale_by(
    children: int, busy: int, waiting: int, idle_for: float, bounds: Bounds, keepalive: float
) -> int:
    """Children to start (positive) or to stop (negative), given how many run, how many of
    them run a job, how many jobs wait, and for how long nothing waited."""
    if children < bounds.minimum:
        return bounds.minimum - children
    if children > bounds.maximum:
        return bounds.maximum - children
    if waiting and busy >= children:
        return min(bounds.maximum - children, waiting)
    if not waiting and idle_for >= keepalive:
        return -(children - max(busy, bounds.minimum))
    return 0


class Autoscaler:
    """The supervisor's scaler: looks at the children and the queues, then grows or shrinks."""

    def __init__(
        self,
        bounds: Bounds,
        waiting: Callable[[], int],
        *,
        keepalive: float = KEEPALIVE,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.bounds = bounds
        self.waiting = waiting
        self.keepalive = keepalive
        self.interval = interval
        self.clock = clock
        self.last_active = clock()  #: the last time jobs waited or children were added

    def __call__(self, supervisor: Supervisor) -> float:
        """Grow or shrink ``supervisor``'s children; seconds until the next look."""
        children = supervisor.active()
        busy = sum(1 for child in children if child.busy)
        waiting = self._waiting()
        now = self.clock()
        if waiting:
            self.last_active = now
        delta = scale_by(
            len(children), busy, waiting, now - self.last_active, self.bounds, self.keepalive
        )
        if delta > 0:
            logger.info("Scaling up %d processes.", delta)
            supervisor.grow(delta)
            self.last_active = now
        elif delta < 0:
            stopped = supervisor.shrink(-delta)
            if stopped:
                logger.info("Scaling down %d processes.", stopped)
        return min(self.interval, self.keepalive)

    def _waiting(self) -> int:
        """Jobs waiting in the worker's queues; 0 when the broker cannot tell right now."""
        try:
            return self.waiting()
        except Exception as exc:  # an outage: keep the children as they are
            logger.warning("Autoscaler cannot read the queues: %s: %s", type(exc).__name__, exc)
            return 0


def queue_waiting(
    broker_lengths: Callable[[], dict[str, int]], queues: Sequence[str]
) -> Callable[[], int]:
    """A ``waiting`` callable: the jobs waiting in ``queues`` (native names, bands included)."""
    wanted = set(queues)

    def waiting() -> int:
        return sum(n for queue, n in broker_lengths().items() if queue in wanted)

    return waiting
