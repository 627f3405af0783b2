"""Celery's beat classes, as ``celery.beat``: entries are real, schedulers are refused.

The facade has no beat process: workers run ``beat_schedule`` themselves (see
``spinach_compat.app.beat`` and ``migration_guide/features.md#periodic-tasks-beat``).
``ScheduleEntry`` works as Celery's. ``Scheduler``, ``PersistentScheduler`` and ``Service``
exist so that modules defining a custom scheduler (as django-celery-beat's) import and
subclass them, but creating one raises ``UnsupportedFeature``: nothing would run it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._state import get_current_app
from .schedules import maybe_schedule
from .surface import module_getattr, refused_init

if TYPE_CHECKING:
    from .app.base import Celery

__all__ = ["PersistentScheduler", "ScheduleEntry", "Scheduler", "SchedulingError", "Service"]

#: Celery's default ``max_interval`` of a scheduler, in seconds.
DEFAULT_MAX_INTERVAL = 300


class SchedulingError(Exception):
    """An entry could not be sent."""


class ScheduleEntry:
    """One ``beat_schedule`` entry: its task, schedule, arguments, options and run count.

    Equality compares the editable fields (``task``, ``schedule``, ``args``, ``kwargs``,
    ``options``), as in Celery; iterating yields ``(field, value)`` pairs.
    """

    name: str | None = None
    schedule: Any = None
    args: Any = None
    kwargs: Any = None
    options: Any = None
    last_run_at: datetime | None = None
    total_run_count = 0

    def __init__(self, name: str | None = None, task: str | None = None,
                 last_run_at: datetime | None = None, total_run_count: int | None = None,
                 schedule: Any = None, args: Any = (), kwargs: Any = None, options: Any = None,
                 relative: bool = False, app: Celery | None = None):  # fmt: skip
        self.app = app
        self.name = name
        self.task = task
        self.args = args
        self.kwargs = kwargs or {}
        self.options = options or {}
        self.schedule = maybe_schedule(schedule, relative, app=app)
        self.last_run_at = last_run_at or self.default_now()
        self.total_run_count = total_run_count or 0

    def default_now(self) -> datetime:
        """The schedule's ``now()``, else the app's."""
        if self.schedule:
            return self.schedule.now()
        return (self.app or get_current_app()).now()

    def _next_instance(self, last_run_at: datetime | None = None) -> ScheduleEntry:
        """A copy run once more, last run at ``last_run_at`` (now by default)."""
        fields = dict(self)
        fields.update(last_run_at=last_run_at or self.default_now(),
                      total_run_count=self.total_run_count + 1)  # fmt: skip
        return self.__class__(**fields)

    __next__ = next = _next_instance

    def update(self, other: ScheduleEntry) -> None:
        """Take ``other``'s editable fields."""
        for field in ("task", "schedule", "args", "kwargs", "options"):
            self.__dict__[field] = getattr(other, field)

    def is_due(self) -> Any:
        """The schedule's ``is_due(last_run_at)``: ``(due, seconds until the next check)``."""
        return self.schedule.is_due(self.last_run_at)

    def editable_fields_equal(self, other: ScheduleEntry) -> bool:
        fields = ("task", "args", "kwargs", "options", "schedule")
        return all(getattr(self, f) == getattr(other, f) for f in fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScheduleEntry) and self.editable_fields_equal(other)

    __hash__ = None  # type: ignore[assignment]

    def __lt__(self, other: object) -> bool:
        if isinstance(other, ScheduleEntry):
            return id(self) < id(other)  # any order will do, as in Celery
        return NotImplemented

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(vars(self).items())

    def __reduce__(self) -> tuple:
        fields = (self.name, self.task, self.last_run_at, self.total_run_count,
                  self.schedule, self.args, self.kwargs, self.options)  # fmt: skip
        return self.__class__, fields

    def __repr__(self) -> str:
        arguments = [repr(a) for a in self.args or ()]
        arguments += [f"{k}={v!r}" for k, v in (self.kwargs or {}).items()]
        call = f"{self.task}({', '.join(arguments)})"
        return f"<{type(self).__name__}: {self.name} {call} {self.schedule}"


class Scheduler:
    """Celery's beat scheduler: subclassing works, creating one is refused (no beat)."""

    Entry = ScheduleEntry
    #: Seconds Celery's beat sleeps at most between checks.
    max_interval = DEFAULT_MAX_INTERVAL
    #: Seconds between syncs of a persistent schedule.
    sync_every = 3 * 60
    #: Tasks sent between syncs (None: no limit).
    sync_every_tasks = None

    __init__ = refused_init("celery.beat.Scheduler")


class PersistentScheduler(Scheduler):
    """Celery's default scheduler, keeping its state in a shelve file: refused, as above."""

    #: The suffixes shelve may add to the schedule file's name.
    known_suffixes = ("", ".db", ".dat", ".bak", ".dir")

    __init__ = refused_init("celery.beat.PersistentScheduler")


class Service:
    """Celery's beat service (the ``celery beat`` process): refused, as above."""

    scheduler_cls = PersistentScheduler

    __init__ = refused_init("celery.beat.Service")


__getattr__ = module_getattr(__name__)
