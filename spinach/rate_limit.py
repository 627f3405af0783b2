"""Global rate limits: how many jobs of a task may start per second, minute or hour, for
the whole namespace (every worker process), enforced by the broker when it hands jobs out.

A limit is checked with GCRA (the generic cell rate algorithm): a task has a theoretical
arrival time (TAT), the earliest time the next job may start at the steady rate; a job may
start at ``now`` if ``TAT - now <= tolerance``, and starting it moves the TAT one interval
on. ``interval`` is the period over the count (``"20/s"``: 0.05 s) and ``tolerance`` is
``interval * (burst - 1)``: after an idle spell, ``burst`` jobs may start back to back,
then the steady rate applies. So at most ``rate * W + burst - 1`` jobs start in any span
of ``W`` seconds. Each broker stores the TAT of a task; this module holds the arithmetic
both brokers share (the Redis scripts repeat the three lines in Lua).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The periods a rate may be given per, in seconds.
PERIODS: dict[str, float] = {"s": 1.0, "m": 60.0, "h": 3600.0}

_RATE = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*/\s*(\w+)\s*$")


@dataclass(frozen=True)
class RateLimit:
    """A parsed rate limit: one job per ``interval`` seconds, ``burst`` back to back."""

    interval: float
    burst: int = 1

    @property
    def tolerance(self) -> float:
        """How far ahead of the steady rate the TAT may run: ``burst - 1`` intervals."""
        return self.interval * (self.burst - 1)


def parse_rate(task_name: str, rate: object, burst: object = 1) -> RateLimit | None:
    """The ``RateLimit`` of ``rate`` (``"<count>/<s|m|h>"``) and ``burst``; None for no
    rate. Raises ``ValueError`` naming the task and what is wrong."""
    check_burst(task_name, burst)
    if rate is None:
        return None
    match = _RATE.match(rate) if isinstance(rate, str) else None
    if match is None or match.group(2) not in PERIODS:
        raise ValueError(
            f"rate_limit of task '{task_name}' must be '<count>/<s|m|h>' such as '100/s', "
            f"not {rate!r}"
        )
    count = float(match.group(1))
    if count <= 0:
        raise ValueError(f"rate_limit of task '{task_name}' must be above zero, not {rate!r}")
    return RateLimit(PERIODS[match.group(2)] / count, burst)  # type: ignore[arg-type]


def check_burst(task_name: str, burst: object) -> None:
    """Raise ``ValueError`` unless ``burst`` is an int >= 1."""
    if not isinstance(burst, int) or isinstance(burst, bool) or burst < 1:
        raise ValueError(f"rate_burst of task '{task_name}' must be an int >= 1, not {burst!r}")


def gcra(tat: float | None, now: float, limit: RateLimit) -> tuple[bool, float]:
    """One GCRA check at ``now`` given the task's TAT (None: never started):
    ``(True, new TAT)`` when a job may start now, ``(False, when one may)`` otherwise."""
    tat = now if tat is None or tat < now else tat
    if tat - now > limit.tolerance:
        return False, tat - limit.tolerance
    return True, tat + limit.interval
