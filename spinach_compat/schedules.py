"""Schedules of ``beat_schedule`` entries, as ``celery.schedules``.

A number of seconds, a ``timedelta`` or ``schedule(run_every)`` become native periodic
tasks; ``crontab`` entries are scheduled ahead by one native periodic ticker (see
``spinach_compat.app.beat``). Each also has Celery's ``is_due``/``remaining_estimate``, which
the beat process's schedulers call (see ``spinach_compat.beat``). ``solar`` can be built, so
modules defining a schedule still import, but a worker refuses to start with such an entry
(see ``migration_guide/``).
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Iterable, Iterator
from datetime import datetime, time, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, NoReturn

from .exceptions import UnsupportedFeature
from .utils.time import humanize_seconds, maybe_make_aware

if TYPE_CHECKING:
    from .app.base import Celery

__all__ = [
    "BaseSchedule",
    "ParseException",
    "crontab",
    "crontab_parser",
    "maybe_schedule",
    "schedule",
    "solar",
]

#: What ``is_due`` returns: whether the entry is due, and the seconds until the next check.
schedstate = namedtuple("schedstate", ("is_due", "next"))


class ParseException(ValueError):
    """A crontab field has an empty part (as ``'1,,2'``), raised where Celery raises it.

    Unlike Celery's it is also a ``ValueError``, as every other invalid crontab field.
    """


class BaseSchedule:
    """The base of schedules, as Celery's: the app's clock and timezone.

    A subclass may be defined (and is a ``beat_schedule`` value Celery's beat would call
    ``is_due`` on), but the facade's workers refuse to start with an entry whose schedule is
    not a number, a ``timedelta``, ``schedule`` or ``crontab`` (see ``app/beat.py``).
    """

    def __init__(self, nowfun: Any = None, app: Celery | None = None):
        self.nowfun = nowfun
        self._app = app

    def now(self) -> datetime:
        """``nowfun()``, else the app's ``now()``."""
        return (self.nowfun or self.app.now)()

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        raise NotImplementedError()

    def is_due(self, last_run_at: datetime) -> tuple[bool, float]:
        raise NotImplementedError()

    def maybe_make_aware(self, dt: datetime, naive_as_utc: bool = True) -> datetime:
        """``dt`` made aware: a naive one read as UTC, then in the app's timezone."""
        return maybe_make_aware(dt, self.tz, naive_as_utc=naive_as_utc)

    @property
    def app(self) -> Any:
        """The app given, else the current app."""
        from ._state import get_current_app

        return self._app or get_current_app()

    @app.setter
    def app(self, app: Celery | None) -> None:
        self._app = app

    @property
    def tz(self) -> tzinfo:
        """The timezone given (as django-celery-beat's ``TzAwareCrontab`` sets), else the
        app's."""
        return self.__dict__.get("_tz") or self.app.timezone

    @tz.setter
    def tz(self, value: tzinfo) -> None:
        self.__dict__["_tz"] = value

    @property
    def utc_enabled(self) -> bool:
        return bool(self.app.conf.enable_utc)

    def to_local(self, dt: datetime) -> datetime:
        """``dt`` as is when ``enable_utc`` (the default), else in the local timezone."""
        return dt if self.utc_enabled else dt.astimezone()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BaseSchedule):
            return other.nowfun == self.nowfun
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # unhashable, as Celery's schedules


class schedule(BaseSchedule):
    """Run every ``run_every`` (seconds or a ``timedelta``)."""

    def __init__(self, run_every: float | timedelta | None = None, relative: bool = False,
                 nowfun: Any = None, app: Celery | None = None):  # fmt: skip
        self.run_every = _timedelta(run_every)
        self.relative = relative
        super().__init__(nowfun=nowfun, app=app)

    @property
    def seconds(self) -> float:
        return max(self._every().total_seconds(), 0)

    def _every(self) -> timedelta:
        """``run_every``; a clear error for a schedule made without one."""
        if self.run_every is None:
            raise ValueError("schedule() needs run_every: a number of seconds or a timedelta")
        return self.run_every

    @property
    def human_seconds(self) -> str:
        return humanize_seconds(self.seconds)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        """The time from now until ``last_run_at + run_every`` (negative when past)."""
        if self.relative:
            _refuse_relative()
        utc = timezone.utc
        last = self.maybe_make_aware(last_run_at).astimezone(utc)
        return last + self._every() - self.maybe_make_aware(self.now()).astimezone(utc)

    def is_due(self, last_run_at: datetime) -> schedstate:
        """``(True, run_every in seconds)`` when due, else ``(False, seconds left)``."""
        remaining = max(self.remaining_estimate(last_run_at).total_seconds(), 0)
        if remaining == 0:
            return schedstate(is_due=True, next=self.seconds)
        return schedstate(is_due=False, next=remaining)

    def __repr__(self) -> str:
        return f"<freq: {self.human_seconds}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, schedule):
            return other.run_every == self.run_every
        return self.run_every == other

    __hash__ = None


def _refuse_relative() -> NoReturn:
    raise UnsupportedFeature(
        "schedule(relative=True) is not supported by spinach_compat: use a fixed period or a "
        "crontab (see migration_guide/features.md#periodic-tasks-beat)"
    )


class crontab_parser:
    """Parse one crontab field into the set of values it matches, in ``[min_, min_ + max_)``.

    ``crontab_parser(60).parse('*/15')`` is ``{0, 15, 30, 45}``; ``crontab_parser(31, 1)``
    reads days of the month, ``crontab_parser(7)`` days of the week.
    """

    def __init__(self, max_: int = 60, min_: int = 0):
        self.max_, self.min_ = max_, min_

    def parse(self, spec: str) -> set[int]:
        return _expand(spec, self.max_, self.min_)


class crontab(BaseSchedule):
    """A crontab-like schedule, as Celery's: fired at every minute matching all five fields.

    Each field is an int, an iterable of ints or a string: ``*``, numbers, ranges ``a-b``
    (wrapping around, as ``fri-mon``), steps ``*/n`` and ``a-b/n``, lists ``a,b``, day names
    (``sun``..``sat``, ``sun`` = 0; 7 is refused, as Celery does) and month names (``jan``..
    ``dec``). As in Celery, and unlike cron, a day must match ``day_of_week`` *and*
    ``day_of_month``. The fields are read in the app's timezone (see ``next_after``). Like
    Celery, the attributes ``minute``, ``hour``, ... are the expanded sets.
    """

    def __init__(self, minute: Any = "*", hour: Any = "*", day_of_week: Any = "*",
                 day_of_month: Any = "*", month_of_year: Any = "*", **kwargs: Any):  # fmt: skip
        self._orig_minute, self._orig_hour = _cronfield(minute), _cronfield(hour)
        self._orig_day_of_week = _cronfield(day_of_week)
        self._orig_day_of_month = _cronfield(day_of_month)
        self._orig_month_of_year = _cronfield(month_of_year)
        self.minute = _expand(minute, 60)
        self.hour = _expand(hour, 24)
        self.day_of_week = _expand(day_of_week, 7)
        self.day_of_month = _expand(day_of_month, 31, 1)
        self.month_of_year = _expand(month_of_year, 12, 1)
        if not any(d <= _DAYS_IN_MONTH[m] for m in self.month_of_year for d in self.day_of_month):
            raise ValueError(
                f"invalid crontab: day_of_month={self._orig_day_of_month!r} never occurs in "
                f"month_of_year={self._orig_month_of_year!r}"
            )
        super().__init__(nowfun=kwargs.get("nowfun"), app=kwargs.get("app"))

    @classmethod
    def from_string(cls, spec: str) -> crontab:
        """``'minute hour day_of_month month_of_year day_of_week'``, as a crontab line."""
        minute, hour, day_of_month, month_of_year, day_of_week = spec.split(" ")
        return cls(minute, hour, day_of_week, day_of_month, month_of_year)

    def next_after(self, after: datetime, tz: tzinfo = timezone.utc) -> datetime:
        """The first occurrence strictly after the aware ``after``, as an aware time in ``tz``.

        Local times that do not exist (a DST gap) are skipped; a local time that occurs
        twice (DST fold) fires once, at its first occurrence.
        """
        for moment in self._iter(after, tz, _MAX_DAYS):
            return moment
        raise ValueError(f"{self!r} has no occurrence within {_MAX_DAYS} days of {after}")

    def occurrences(self, after: datetime, until: datetime, tz: tzinfo = timezone.utc) -> list:
        """Every occurrence in ``(after, until]``, in order, as aware times in ``tz``."""
        days = (until.astimezone(tz).date() - after.astimezone(tz).date()).days + 2
        found = []
        for moment in self._iter(after, tz, days):
            if moment > until:
                break
            found.append(moment)
        return found

    def _iter(self, after: datetime, tz: tzinfo, days: int) -> Iterator[datetime]:
        """The occurrences after ``after``, in order, looking ``days`` local days ahead."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("crontab occurrences need an aware datetime")
        start = after.astimezone(tz).replace(second=0, microsecond=0, tzinfo=None)
        start += timedelta(minutes=1)
        hours, minutes = sorted(self.hour), sorted(self.minute)
        day = start.date()
        for _ in range(days):
            if (
                day.month in self.month_of_year
                and day.day in self.day_of_month
                and day.isoweekday() % 7 in self.day_of_week
            ):
                for hour in hours:
                    for minute in minutes:
                        naive = datetime.combine(day, time(hour, minute))
                        if naive < start:
                            continue
                        moment = _existing(naive, tz)
                        if moment is not None and moment > after:
                            yield moment
            day += timedelta(days=1)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        """The time from now until the first occurrence after ``last_run_at`` (negative or
        zero when it is past), fields read in ``tz``."""
        last = self.maybe_make_aware(last_run_at)
        now = self.maybe_make_aware(self.now())
        return self.next_after(last, self.tz) - now

    def is_due(self, last_run_at: datetime) -> schedstate:
        """As Celery's: due when an occurrence after ``last_run_at`` is past; the seconds
        until the next occurrence after now (when due) or after ``last_run_at``."""
        remaining = max(self.remaining_estimate(last_run_at).total_seconds(), 0)
        if remaining == 0:
            following = self.remaining_estimate(self.now()).total_seconds()
            return schedstate(is_due=True, next=max(following, 0))
        return schedstate(is_due=False, next=remaining)

    def __repr__(self) -> str:
        fields = (self._orig_minute, self._orig_hour, self._orig_day_of_month,
                  self._orig_month_of_year, self._orig_day_of_week)  # fmt: skip
        return "<crontab: {} {} {} {} {} (m/h/dM/MY/d)>".format(*fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, crontab) and all(
            getattr(self, f) == getattr(other, f)
            for f in ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
        )

    __hash__ = None


class solar(BaseSchedule):
    """A solar-event schedule: accepted in code, refused by workers (not supported)."""

    def __init__(self, event: str, lat: float, lon: float, **kwargs: Any):
        self.event, self.lat, self.lon = event, lat, lon
        super().__init__(nowfun=kwargs.get("nowfun"), app=kwargs.get("app"))

    def __repr__(self) -> str:
        return f"<solar: {self.event} at latitude {self.lat}, longitude: {self.lon}>"

    def remaining_estimate(self, last_run_at: datetime) -> NoReturn:
        _refuse_solar()

    def is_due(self, last_run_at: datetime) -> NoReturn:
        _refuse_solar()


def _refuse_solar() -> NoReturn:
    raise UnsupportedFeature(
        "solar schedules are not supported by spinach_compat: use a fixed period or a "
        "crontab (see migration_guide/features.md#periodic-tasks-beat)"
    )


def maybe_schedule(value: Any, relative: bool = False, app: Celery | None = None) -> Any:
    """A number or ``timedelta`` as a ``schedule``; a schedule as is."""
    if isinstance(value, (int, float, timedelta)) and not isinstance(value, bool):
        return schedule(value, relative, app=app)
    return value


_DAYS_IN_MONTH = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30,
                  12: 31}  # fmt: skip
_WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MONTHS = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8,
           "sep": 9, "oct": 10, "nov": 11, "dec": 12}  # fmt: skip
#: How far ``next_after`` looks: Feb 29 on a given weekday recurs within 28 years.
_MAX_DAYS = 366 * 29
_PART = re.compile(r"(?:(\*)|(\w+?)(?:-(\w+))?)(?:/(\w*))?")


def _cronfield(value: Any) -> Any:
    return "*" if value is None else value


def _expand(spec: Any, size: int, low: int = 0) -> set[int]:
    """The values a crontab field matches, in ``[low, low + size)``, as Celery expands them."""
    if isinstance(spec, bool):
        raise TypeError(f"invalid crontab field {spec!r}")
    if isinstance(spec, int):
        values = {spec}
    elif isinstance(spec, str):
        values = set()
        for part in spec.split(","):
            values.update(_expand_part(part, size, low))
    elif isinstance(spec, Iterable):
        values = set(spec)
    else:
        raise TypeError(f"invalid crontab field {spec!r}: an int, a string or an iterable")
    for value in values:
        if not isinstance(value, int) or not low <= value < low + size:
            raise ValueError(f"invalid crontab value {value!r}: not in {low}-{low + size - 1}")
    return values


def _expand_part(part: str, size: int, low: int) -> list[int]:
    if not part:
        raise ParseException("invalid crontab field: an empty part (as in '1,,2')")
    match = _PART.fullmatch(part.strip())
    if match is None:
        raise ValueError(f"invalid crontab part {part!r}")
    star, first, last, step = match.groups()
    if star:
        values = list(range(low, low + size))
    else:
        begin = _number(first, size, low)
        end = begin if last is None else _number(last, size, low)
        if end < begin:  # wraps around, as fri-mon
            values = list(range(begin, low + size)) + list(range(low, end + 1))
        else:
            values = list(range(begin, end + 1))
    if step is not None:
        if not step.isdigit() or int(step) == 0 or (not star and last is None):
            raise ValueError(f"invalid crontab step in {part!r}")
        values = values[:: int(step)]
    return values


def _number(token: str, size: int, low: int) -> int:
    """A number, a month name or a day name (first three letters), as Celery reads them."""
    if token.isdigit():
        value = int(token)
    else:
        key = token[:3].lower()
        if key in _MONTHS:
            value = _MONTHS[key]
        elif key in _WEEKDAYS:
            value = _WEEKDAYS[key]
        else:
            raise ValueError(f"invalid crontab value {token!r}")
    if not low <= value < low + size:
        raise ValueError(f"invalid crontab value {token!r}: not in {low}-{low + size - 1}")
    return value


def _existing(naive: datetime, tz: tzinfo) -> datetime | None:
    """``naive`` as an aware time in ``tz`` (first of a fold); None in a DST gap."""
    moment = naive.replace(tzinfo=tz)
    if moment.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) != naive:
        return None
    return moment


def _timedelta(value: float | timedelta | None) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(seconds=value)
