"""Celery's ``worker_prefetch_multiplier`` as the engine's prefetch.

A Celery worker reserves up to ``multiplier * concurrency`` messages, those it runs
included. The engine's thread pool holds ``(multiplier - 1) * concurrency`` jobs beyond
its threads, and only while its jobs are short (``spinach.workers.prefetch``): a setting
of 1, the usual one for long tasks, holds none. A prefork child holds none either: its
parent answers ``inspect().reserved()`` and cannot see a child's held jobs. Celery's 0
(no limit) is refused: an unbounded prefetch is what fills a worker's memory. The
facade's own ``spinach_prefetch_short_job`` sets what "short" means (the engine's
``PrefetchSettings.short_job``, 5 ms by default).
"""

from __future__ import annotations

from typing import Any

from spinach.workers.prefetch import PrefetchSettings

from ..exceptions import UnsupportedFeature


def prefetch_settings(conf: Any, concurrency: int, pool: str) -> PrefetchSettings:
    """The engine's prefetch for a worker of ``concurrency`` threads in ``pool``."""
    multiplier = conf.get("worker_prefetch_multiplier", 4)
    if isinstance(multiplier, bool) or not isinstance(multiplier, int) or multiplier < 0:
        raise ValueError(
            f"worker_prefetch_multiplier must be an int >= 1, not {multiplier!r}"
        )
    if multiplier == 0:
        raise UnsupportedFeature(
            "worker_prefetch_multiplier = 0 (prefetch without a limit) is not supported: "
            "set a positive multiplier (1 prefetches nothing)"
        )
    if pool == "prefork":
        return PrefetchSettings(limit=0)
    limit = (multiplier - 1) * concurrency
    short_job = conf.get("spinach_prefetch_short_job")
    if short_job is None:
        return PrefetchSettings(limit=limit)
    return PrefetchSettings(limit=limit, short_job=_seconds(short_job))


def _seconds(value: Any) -> float:
    """``spinach_prefetch_short_job`` checked: a positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"spinach_prefetch_short_job must be seconds > 0, not {value!r}")
    return float(value)
