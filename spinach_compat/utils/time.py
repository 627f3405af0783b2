"""Time helpers, as ``celery.utils.time``.

Timezones are ``zoneinfo``/``datetime.timezone`` objects. ``make_aware`` gives a local time
in a DST gap the offset before the gap, shifted forward by the gap's length (the wall time
that exists), and a repeated local time its first occurrence, as Celery does.
"""

from __future__ import annotations

import numbers
import random
import time as _time
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from datetime import timezone as dt_timezone
from typing import Any
from zoneinfo import ZoneInfo

from ..surface import module_getattr

__all__ = [
    "LocalTimezone",
    "add_seconds_to_datetime",
    "adjust_timestamp",
    "delta_resolution",
    "get_exponential_backoff_interval",
    "humanize_seconds",
    "is_naive",
    "localize",
    "make_aware",
    "maybe_iso8601",
    "maybe_make_aware",
    "maybe_timedelta",
    "rate",
    "subtract_datetimes",
    "to_utc",
    "utcoffset",
    "weekday",
]


class LocalTimezone(tzinfo):
    """The machine's local time, with the DST rules ``time.localtime`` applies (the ``TZ``
    variable, else the system's): ``app.timezone`` when ``enable_utc`` is off and no
    ``timezone`` is set, as Celery's."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(seconds=self._local(dt).tm_gmtoff)

    def dst(self, dt: datetime | None) -> timedelta:
        local = self._local(dt)
        if local.tm_isdst <= 0:
            return timedelta(0)
        return timedelta(seconds=local.tm_gmtoff + _time.timezone)

    def tzname(self, dt: datetime | None) -> str:
        return self._local(dt).tm_zone

    def fromutc(self, dt: datetime) -> datetime:
        stamp = (dt.replace(tzinfo=None) - _EPOCH).total_seconds()
        return dt + timedelta(seconds=_time.localtime(stamp).tm_gmtoff)

    @staticmethod
    def _local(dt: datetime | None) -> _time.struct_time:
        """The local time's details at wall time ``dt`` (now if None)."""
        if dt is None:
            return _time.localtime()
        wall = (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.weekday(), 0, -1)
        return _time.localtime(_time.mktime(wall))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalTimezone)

    def __hash__(self) -> int:
        return hash(LocalTimezone)

    def __repr__(self) -> str:
        return f"<LocalTimezone: {self.tzname(None)}>"


_EPOCH = datetime(1970, 1, 1)

WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_RATE_DIVISORS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_TIME_UNITS = (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0), ("second", 1.0))
#: UTC as Celery's helpers return it (a ZoneInfo, equal to ``datetime.timezone.utc``).
UTC = ZoneInfo("UTC")


def maybe_timedelta(delta: Any) -> Any:
    """A number of seconds as a ``timedelta``; anything else as is."""
    if isinstance(delta, numbers.Real):
        return timedelta(seconds=float(delta))  # Fraction too
    return delta


def rate(r: Any) -> float:
    """A rate string (``'100/m'``, ``'2/h'``, ``'0.5/s'``, ``'10'``) in tasks per second."""
    if not r:
        return 0
    if not isinstance(r, str):
        return r
    count, _, unit = r.partition("/")
    return float(count) / _RATE_DIVISORS[unit or "s"] or 0


def weekday(name: str) -> int:
    """The day number of a day name (``'sunday'``, ``'sun'``: 0 ... ``'sat'``: 6)."""
    try:
        return WEEKDAYS[name[:3].lower()]
    except KeyError:
        raise KeyError(name) from None


def humanize_seconds(secs: float, prefix: str = "", sep: str = "", now: str = "now",
                     microseconds: bool = False) -> str:  # fmt: skip
    """``'1.50 minutes'``, ``'2.00 hours'``...; ``now`` under a second (unless ``microseconds``)."""
    secs = float(format(float(secs), ".2f"))
    for unit, divider in _TIME_UNITS:
        if secs >= divider:
            count = secs / divider
            return f"{prefix}{sep}{count:.2f} {unit}{'' if count == 1 else 's'}"
    if microseconds and secs > 0.0:
        return f"{prefix}{sep}{secs:.2f} seconds"
    return now


def maybe_iso8601(dt: datetime | str | None) -> datetime | None:
    """An ISO 8601 string as a ``datetime``; a ``datetime`` as is; None for nothing."""
    if not dt:
        return None
    if isinstance(dt, datetime):
        return dt
    return datetime.fromisoformat(dt[:-1] + "+00:00" if dt.endswith("Z") else dt)


def is_naive(dt: datetime) -> bool:
    """Whether ``dt`` has no timezone (or one without an offset)."""
    return dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None


def make_aware(dt: datetime, tz: tzinfo) -> datetime:
    """The naive ``dt`` read in ``tz`` (DST gap: shifted forward; fold: the first)."""
    aware = dt.replace(tzinfo=tz, fold=0)
    wall = aware.astimezone(dt_timezone.utc).astimezone(tz)
    if wall.replace(tzinfo=None) != dt.replace(tzinfo=None, fold=0):  # in a DST gap
        after, before = aware.replace(fold=1).utcoffset(), aware.utcoffset()
        if after is not None and before is not None:  # a tz without offsets has no gap
            aware = (aware + (after - before)).replace(fold=0)
        aware = aware.astimezone(dt_timezone.utc).astimezone(tz)
    return aware


def localize(dt: datetime, tz: tzinfo) -> datetime:
    """``dt`` in ``tz``: a naive one is read in ``tz``, a UTC one converted to it."""
    if is_naive(dt):
        dt = make_aware(dt, tz)
    if dt.utcoffset() == timedelta(0) and _is_utc(dt.tzinfo):
        dt = dt.astimezone(tz)
    return dt


def to_utc(dt: datetime) -> datetime:
    """The naive ``dt`` read as UTC."""
    return make_aware(dt, UTC)


def maybe_make_aware(dt: datetime, tz: tzinfo | None = None, naive_as_utc: bool = True) -> datetime:
    """An aware ``dt`` as is; a naive one read as UTC (``naive_as_utc``), then in ``tz``."""
    if not is_naive(dt):
        return dt
    if naive_as_utc:
        dt = to_utc(dt)
    return localize(dt, tz or UTC)


def add_seconds_to_datetime(dt: datetime, seconds: float) -> datetime:
    """``dt`` plus elapsed ``seconds`` (an aware one across DST changes by its UTC time)."""
    delta = timedelta(seconds=seconds)
    if is_naive(dt):
        return dt + delta
    return (dt.astimezone(dt_timezone.utc) + delta).astimezone(dt.tzinfo)


def subtract_datetimes(end: datetime, start: datetime) -> timedelta:
    """The time elapsed from ``start`` to ``end`` (naive ones read as UTC)."""
    utc = dt_timezone.utc
    return maybe_make_aware(end).astimezone(utc) - maybe_make_aware(start).astimezone(utc)


def get_exponential_backoff_interval(factor: int, retries: int, maximum: int,
                                     full_jitter: bool = False) -> int:  # fmt: skip
    """``min(maximum, factor * 2 ** retries)``; with ``full_jitter`` a random value up to it."""
    countdown = min(maximum, factor * (2**retries))
    if full_jitter:
        countdown = random.randrange(countdown + 1)
    return max(0, countdown)


def delta_resolution(dt: datetime, delta: timedelta) -> datetime:
    """``dt`` truncated to the unit of ``delta``: days, hours or minutes (else as is)."""
    seconds = max(delta.total_seconds(), 0)
    if seconds >= 86400:
        return dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if seconds >= 3600:
        return dt.replace(minute=0, second=0, microsecond=0)
    if seconds >= 60:
        return dt.replace(second=0, microsecond=0)
    return dt


def utcoffset(time: Any = _time, localtime: Callable[[], Any] = _time.localtime) -> float:
    """Hours west of UTC of the local time now (Celery's sign: UTC+2 is -2.0)."""
    if localtime().tm_isdst:
        return time.altzone / 3600
    return time.timezone / 3600


def adjust_timestamp(ts: float, offset: float, here: Callable[[], float] = utcoffset) -> float:
    """Shift ``ts`` from a host at ``offset`` (hours, as ``utcoffset``) to this host's."""
    return ts - (offset - here()) * 3600


def _is_utc(tz: tzinfo | None) -> bool:
    return tz is dt_timezone.utc or getattr(tz, "key", None) in ("UTC", "Etc/UTC")


__getattr__ = module_getattr(__name__)
