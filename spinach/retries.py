"""Backoff between the attempts of a failing job.

The delay before retry number ``n`` (1 for the first retry) is::

    ceiling = min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2 ** (n - 1))
    delay = ceiling / 2 + uniform(0, ceiling / 2)

so it doubles with every attempt up to the cap (20 minutes), and the random half spreads
retries of many jobs that failed together (equal jitter).
"""

import random
from collections.abc import Callable

from . import const


def exponential_backoff(
    attempt: int,
    base: float = const.RETRY_BASE_DELAY,
    cap: float = const.RETRY_MAX_DELAY,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based)."""
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, not {attempt}")
    exponent = min(attempt - 1, 64)  # 2**64 times any base exceeds every sane cap
    ceiling = min(cap, base * 2**exponent)
    return ceiling / 2 + rand() * ceiling / 2
