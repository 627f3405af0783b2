"""Schedules of ``beat_schedule`` entries, as ``celery.schedules``.

A number of seconds, a ``timedelta`` or ``schedule(run_every)`` become native periodic
tasks (see ``spinach_compat.app.beat``). ``crontab`` and ``solar`` can be built, so modules
defining a schedule still import, but a worker refuses to start with such an entry: the
native engine fires at fixed periods only (see ``migration_guide/``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

__all__ = ["crontab", "maybe_schedule", "schedule", "solar"]


class schedule:
    """Run every ``run_every`` (seconds or a ``timedelta``)."""

    def __init__(self, run_every: float | timedelta | None = None, relative: bool = False,
                 nowfun: Any = None, app: Any = None):  # fmt: skip
        self.run_every = _timedelta(run_every)
        self.relative = relative
        self.nowfun = nowfun
        self.app = app

    def __repr__(self) -> str:
        return f"<freq: {self.run_every}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, schedule) and other.run_every == self.run_every

    __hash__ = None  # type: ignore[assignment]


class crontab:
    """A crontab-like schedule: accepted in code, refused by workers (not supported yet)."""

    def __init__(self, minute: Any = "*", hour: Any = "*", day_of_week: Any = "*",
                 day_of_month: Any = "*", month_of_year: Any = "*", **kwargs: Any):  # fmt: skip
        self.minute, self.hour, self.day_of_week = minute, hour, day_of_week
        self.day_of_month, self.month_of_year = day_of_month, month_of_year

    def __repr__(self) -> str:
        fields = (self.minute, self.hour, self.day_of_week, self.day_of_month, self.month_of_year)
        return "<crontab: {} {} {} {} {} (m/h/dM/MY/d)>".format(*fields)


class solar:
    """A solar-event schedule: accepted in code, refused by workers (not supported)."""

    def __init__(self, event: str, lat: float, lon: float, **kwargs: Any):
        self.event, self.lat, self.lon = event, lat, lon

    def __repr__(self) -> str:
        return f"<solar: {self.event} at latitude {self.lat}, longitude: {self.lon}>"


def maybe_schedule(value: Any, relative: bool = False, app: Any = None) -> Any:
    """A number or ``timedelta`` as a ``schedule``; a schedule as is."""
    if isinstance(value, (int, float, timedelta)) and not isinstance(value, bool):
        return schedule(value, relative, app=app)
    return value


def _timedelta(value: float | timedelta | None) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(seconds=value)
