"""Celery's beat API, as ``celery.beat``: entries, schedulers and the beat service.

``ScheduleEntry``, ``Scheduler`` and ``PersistentScheduler`` have Celery's documented API and
behaviour, so a scheduler written against it (django-celery-beat's ``DatabaseScheduler``,
``redbeat.RedBeatScheduler``, a project's subclass) runs unchanged in the
``spinach-compat beat`` process (``spinach_compat.bin.beat``) or embedded in a worker
(``worker -B``). A due entry is published through the app (``task.apply_async`` or
``app.send_task``), so routing and queues apply, and the facade's workers run it.

Beyond Celery, ``Service`` acts only while it holds the namespace's beat lease (see
``spinach_compat.app.beat_lease``): over one broker, however many beat processes run,
exactly one sends the schedule, and another takes over when it dies. Differences:

- ``PersistentScheduler`` keeps its file as JSON (each entry's last run and run count), not
  as Celery's pickled shelve: nothing is unpickled. A Celery file found there is replaced
  (the entries start afresh, as Celery does with a file it cannot read).
- No default ``celery.backend_cleanup`` entry, and one a scheduler adds (django-celery-beat's)
  is not sent: the facade's result backends expire results themselves.
- ``beat_init`` is sent when the process first leads, not when it starts (so redbeat's own
  lock is taken by the leader only); ``-B`` sends ``beat_embedded_init`` then too.
- Remote control (``BeatPidbox``) is not supported.
"""

from __future__ import annotations

import contextlib
import copy
import heapq
import json
import logging
import os
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from . import signals
from ._state import get_current_app
from .app import beat_lease
from .schedules import crontab, maybe_schedule
from .surface import module_getattr
from .utils.time import maybe_make_aware

if TYPE_CHECKING:
    from .app.base import Celery

__all__ = [
    "EmbeddedService", "PersistentScheduler", "ScheduleEntry", "Scheduler", "SchedulingError",
    "Service",
]  # fmt: skip

logger = logging.getLogger("spinach_compat.beat")

#: Celery's daily task deleting expired results, which schedulers such as
#: django-celery-beat's add: not sent, the facade's result backends expire results.
BACKEND_CLEANUP = "celery.backend_cleanup"

#: What the scheduler's heap holds, as Celery's: the entry's due time (UNIX), a
#: priority, the entry.
event_t = namedtuple("event_t", ("time", "priority", "entry"))

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
    """Celery's beat scheduler: a schedule of entries, each sent when due.

    ``tick()`` sends at most one due entry and returns the seconds to wait before the next
    call; ``schedule`` is the mapping of entries (name -> ``Entry``); ``sync()`` saves state
    (every ``sync_every`` seconds, or ``sync_every_tasks`` sends). Subclasses override
    ``setup_schedule``, ``schedule``, ``sync``, ``reserve``, ``is_due`` or ``apply_async``.
    """

    Entry = ScheduleEntry
    #: Seconds the beat loop sleeps at most between ticks: higher wakes beat less often,
    #: lower notices a changed schedule (a database scheduler's) sooner.
    max_interval: float = DEFAULT_MAX_INTERVAL
    #: Seconds between syncs of a persistent schedule: lower loses fewer runs' bookkeeping
    #: when beat is killed, at the cost of more writes.
    sync_every: float = 3 * 60
    #: Sends between forced syncs (None or 0: no limit).
    sync_every_tasks: int | None = None

    _last_sync: float | None = None
    _tasks_since_sync = 0
    logger = logger

    def __init__(self, app: Celery, schedule: Any = None, max_interval: float | None = None,
                 Producer: Any = None, lazy: bool = False, sync_every_tasks: int | None = None,
                 **kwargs: Any):  # fmt: skip
        self.app = app
        self.data = {} if schedule is None else schedule
        self.max_interval = (max_interval or app.conf.get("beat_max_loop_interval")
                             or self.max_interval)  # fmt: skip
        self.Producer = Producer
        self._heap: list | None = None
        self.old_schedulers: Any = None
        self.sync_every_tasks = (app.conf.get("beat_sync_every") if sync_every_tasks is None
                                 else sync_every_tasks)  # fmt: skip
        if not lazy:
            self.setup_schedule()

    # -- the schedule -------------------------------------------------------------------

    def setup_schedule(self) -> None:
        """Load the schedule: ``beat_schedule`` entries merged into ``data``."""
        self.install_default_entries(self.data)
        self.merge_inplace(self.app.conf.beat_schedule or {})

    def install_default_entries(self, data: Any) -> None:
        """None: Celery's ``celery.backend_cleanup`` is not needed, the facade's result
        backends expire results themselves."""

    def get_schedule(self) -> Any:
        return self.data

    def set_schedule(self, schedule: Any) -> None:
        self.data = schedule

    schedule = property(get_schedule, set_schedule)

    def add(self, **kwargs: Any) -> ScheduleEntry:
        """Add (or replace) the entry made of ``kwargs``."""
        entry = self.Entry(app=self.app, **kwargs)
        self.schedule[entry.name] = entry
        return entry

    def _maybe_entry(self, name: str, entry: Any) -> Any:
        if isinstance(entry, self.Entry):
            entry.app = self.app
            return entry
        return self.Entry(**dict(entry, name=name, app=self.app))

    def update_from_dict(self, dict_: dict) -> None:
        """Add or replace the entries of ``dict_`` (name -> entry or its fields)."""
        self.schedule.update({name: self._maybe_entry(name, e) for name, e in dict_.items()})

    def merge_inplace(self, b: dict) -> None:
        """Make the schedule's names those of ``b``: entries not in ``b`` go, new ones come,
        kept ones take ``b``'s fields but keep their last run and run count."""
        schedule = self.schedule
        for name in set(schedule) ^ set(b):
            schedule.pop(name, None)
        for name, fields in b.items():
            entry = self.Entry(**dict(fields, name=name, app=self.app))
            if schedule.get(name):
                schedule[name].update(entry)
            else:
                schedule[name] = entry

    def schedules_equal(self, old_schedules: Any, new_schedules: Any) -> bool:
        """Whether two schedules have the same names and equal entries."""
        if old_schedules is None or new_schedules is None:
            return old_schedules is new_schedules
        if set(old_schedules) != set(new_schedules):
            return False
        return all(new_schedules.get(n) == e for n, e in old_schedules.items())

    # -- ticking ------------------------------------------------------------------------

    def is_due(self, entry: ScheduleEntry) -> Any:
        return entry.is_due()

    def adjust(self, n: float, drift: float = -0.010) -> float:
        """A positive delay made a little shorter, so that beat wakes just in time."""
        return n + drift if n and n > 0 else n

    def _when(self, entry: ScheduleEntry, delay: float) -> float:
        """The UNIX time ``delay`` seconds after the entry's now."""
        now = maybe_make_aware(entry.default_now())
        return now.timestamp() + (self.adjust(delay) or 0)

    def _check(self, entry: ScheduleEntry) -> tuple[bool, float]:
        """``is_due``; an entry whose next run cannot be computed is retried later."""
        try:
            due, next_check = self.is_due(entry)
        except Exception:
            logger.exception("beat: cannot compute the next run of %r; trying again in %s s",
                             entry.name, self.max_interval)  # fmt: skip
            return False, self.max_interval
        return due, next_check

    def populate_heap(self) -> None:
        """The heap of entries by due time, from the schedule."""
        heap = []
        for entry in self.schedule.values():
            due, next_check = self._check(entry)
            heap.append(event_t(self._when(entry, 0 if due else next_check), 5, entry))
        heapq.heapify(heap)
        self._heap = heap

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Send the first entry if due; the seconds to wait before the next tick."""
        if self._heap is None or not self.schedules_equal(self.old_schedulers, self.schedule):
            self.old_schedulers = copy.copy(self.schedule)
            self.populate_heap()
        heap = self._heap
        if not heap:
            return self.max_interval
        event = heap[0]
        entry = event.entry
        now = self._when(entry, 0)
        if event.time > now:
            return min(event.time - now, self.max_interval)
        due, next_check = self._check(entry)
        heapq.heappop(heap)
        if due:
            next_entry = self.reserve(entry)
            self.apply_entry(entry, producer=self.producer)
            heapq.heappush(heap, event_t(self._when(next_entry, next_check), event.priority,
                                         next_entry))  # fmt: skip
            return 0
        delay = next_check if isinstance(next_check, (int, float)) else self.max_interval
        heapq.heappush(heap, event_t(self._when(entry, delay), event.priority, entry))
        if heap[0].entry is not entry:
            return 0  # another entry is first now: look at it at once
        return min(self.adjust(delay), self.max_interval)

    def reserve(self, entry: ScheduleEntry) -> ScheduleEntry:
        """The entry run once more (last run now), stored in the schedule."""
        new_entry = self.schedule[entry.name] = next(entry)
        return new_entry

    # -- sending ------------------------------------------------------------------------

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        """Send ``entry`` (already reserved); an error is logged, beat goes on."""
        logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            result = self.apply_async(entry, producer=producer, advance=False)
        except Exception as exc:
            logger.error("Message Error: %s", exc, exc_info=True)
        else:
            logger.debug("%s sent. id->%s", entry.task, getattr(result, "id", None))

    def apply_async(self, entry: ScheduleEntry, producer: Any = None, advance: bool = True,
                    **kwargs: Any) -> Any:  # fmt: skip
        """Publish the entry's task through the app (its routes and queues apply), with
        the header ``celery_beat_task``; reserve it first when ``advance``. A failure is a
        ``SchedulingError`` naming the entry."""
        entry = self.reserve(entry) if advance else entry
        if entry.task == BACKEND_CLEANUP:
            logger.debug("beat: %s not sent: the result backends expire results", entry.task)
            return None
        try:
            args = [_evaluate(a) for a in entry.args or ()]
            kwargs = {k: _evaluate(v) for k, v in (entry.kwargs or {}).items()}
            options = self._send_options(entry)
            beat_lease.record_run(self.app.engine.broker, str(entry.name), _utcnow())
            task = self.app.tasks.get(str(entry.task))
            if task is not None:
                return task.apply_async(args, kwargs, **options)
            return self.send_task(entry.task, args, kwargs, **options)
        except Exception as exc:
            raise SchedulingError(f"Couldn't apply scheduled task {entry.name}: {exc}") from exc
        finally:
            self._tasks_since_sync += 1
            if self.should_sync():
                self._do_sync()

    def _send_options(self, entry: ScheduleEntry) -> dict:
        """The entry's options, with beat's header; a ``beat_schedule`` crontab entry gets
        the task id the workers' crontab ticker gives the same occurrence, so an occurrence
        it already queued is not sent twice (see ``spinach_compat.app.beat``)."""
        from .app.beat import occurrence_id

        options = dict(entry.options or {})
        options["headers"] = {**(options.get("headers") or {}), "celery_beat_task": True}
        static = self.app.conf.beat_schedule or {}
        if isinstance(entry.schedule, crontab) and entry.name in static:
            minute = _utcnow().replace(second=0, microsecond=0)
            options.setdefault("task_id", occurrence_id(str(entry.name), minute))
        return {k: v for k, v in options.items() if v is not None}

    def send_task(self, *args: Any, **kwargs: Any) -> Any:
        return self.app.send_task(*args, **kwargs)

    # -- syncing ------------------------------------------------------------------------

    def should_sync(self) -> bool:
        """Whether ``sync_every`` seconds or ``sync_every_tasks`` sends passed."""
        if self._last_sync is None or _monotonic() - self._last_sync > self.sync_every:
            return True
        return bool(self.sync_every_tasks and self._tasks_since_sync >= self.sync_every_tasks)

    def _do_sync(self) -> None:
        try:
            logger.debug("beat: Synchronizing schedule...")
            self.sync()
        finally:
            self._last_sync = _monotonic()
            self._tasks_since_sync = 0

    def sync(self) -> None:
        """Save the schedule's state (nothing to save here)."""

    def close(self) -> None:
        """Sync; subclasses also close their storage."""
        self.sync()

    @cached_property
    def producer(self) -> Any:
        """None: entries are published through the app, not a kombu producer."""
        return None

    @property
    def info(self) -> str:
        """Lines the beat banner shows about the scheduler."""
        return ""


class PersistentScheduler(Scheduler):
    """Celery's default scheduler: ``beat_schedule``, each entry's last run and run count
    kept in ``schedule_filename`` across restarts (as JSON, see the module)."""

    #: The suffixes a Celery (shelve) schedule file may have.
    known_suffixes = ("", ".db", ".dat", ".bak", ".dir")

    def __init__(self, *args: Any, **kwargs: Any):
        self.schedule_filename = kwargs.get("schedule_filename") or "celerybeat-schedule"
        self._stored: dict = {}
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        """Merge ``beat_schedule`` with the runs stored for it (reset if the timezone or
        ``enable_utc`` changed, as Celery does)."""
        stored = self._read_file()
        tz, utc = str(self.app.conf.timezone or "UTC"), bool(self.app.conf.enable_utc)
        if stored.get("tz", tz) != tz or stored.get("utc_enabled", utc) != utc:
            logger.warning("Reset: the timezone or enable_utc changed; the stored runs go")
            stored = {}
        self._stored = {"tz": tz, "utc_enabled": utc}
        self.data = {}
        self.merge_inplace(self.app.conf.beat_schedule or {})
        for name, entry in self.data.items():
            _restore_runs(entry, stored.get("entries", {}).get(name))
        self.sync()

    def _read_file(self) -> dict:
        try:
            with open(self.schedule_filename, encoding="utf-8") as file:
                data = json.load(file)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("Replacing the unreadable schedule file %r (%s: %s)",
                           self.schedule_filename, type(exc).__name__, exc)  # fmt: skip
            return {}
        return data if isinstance(data, dict) else {}

    def sync(self) -> None:
        """Write each entry's last run and run count to the file (atomically)."""
        entries = {
            str(name): {"last_run_at": maybe_make_aware(e.last_run_at).isoformat(),
                        "total_run_count": e.total_run_count}
            for name, e in self.data.items()
        }  # fmt: skip
        data = {**self._stored, "entries": entries}
        temporary = f"{self.schedule_filename}.tmp{os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(data, file)
        os.replace(temporary, self.schedule_filename)

    @property
    def info(self) -> str:
        return f"    . db -> {self.schedule_filename}"


def _restore_runs(entry: ScheduleEntry, stored: Any) -> None:
    """Give ``entry`` the last run and run count stored for it, if readable."""
    if not isinstance(stored, dict):
        return
    with contextlib.suppress(TypeError, ValueError):
        entry.last_run_at = datetime.fromisoformat(stored["last_run_at"])
        entry.total_run_count = int(stored.get("total_run_count") or 0)


def _evaluate(value: Any) -> Any:
    """A ``BeatLazyFunc`` argument called, others as they are."""
    return value() if isinstance(value, BeatLazyFunc) else value


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _monotonic() -> float:
    return time.monotonic()


class BeatLazyFunc:
    """An entry argument computed each time the entry is sent: ``func(*args, **kwargs)``."""

    def __init__(self, func: Callable, *args: Any, **kwargs: Any):
        self._func, self._args, self._kwargs = func, args, kwargs

    def __call__(self) -> Any:
        return self.delay()

    def delay(self) -> Any:
        return self._func(*self._args, **self._kwargs)


class Service:
    """The beat service: ticks its scheduler while it holds the namespace's beat lease.

    ``start()`` runs until ``stop()``; a process that does not lead checks the lease every
    ``lease.check_interval`` seconds and takes over when the leader is gone, carrying on
    from the last runs the leader recorded (see ``spinach_compat.app.beat_lease``).
    """

    scheduler_cls: Any = PersistentScheduler

    def __init__(self, app: Celery, max_interval: float | None = None,
                 schedule_filename: str | None = None, scheduler_cls: Any = None,
                 remote_control: Any = None, hostname: str | None = None,
                 lease_term: float | None = None):  # fmt: skip
        self.app = app
        self.max_interval = max_interval or app.conf.get("beat_max_loop_interval")
        self.scheduler_cls = scheduler_cls or self.scheduler_cls
        self.schedule_filename = (schedule_filename or app.conf.get("beat_schedule_filename")
                                  or "celerybeat-schedule")  # fmt: skip
        self.hostname = hostname
        self.lease_term = float(lease_term or app.conf.get("spinach_beat_lease_term")
                                or beat_lease.LEASE_TERM)  # fmt: skip
        self.leading = False
        self._initialised = False
        self._embedded = False
        self._is_shutdown = threading.Event()
        self._is_stopped = threading.Event()

    def get_scheduler(self, lazy: bool = False) -> Scheduler:
        """A scheduler of ``scheduler_cls`` (a class or its dotted path)."""
        from .app.beat_schedulers import load_scheduler_class

        cls = load_scheduler_class(self.scheduler_cls)
        return cls(app=self.app, schedule_filename=self.schedule_filename,
                   max_interval=self.max_interval, lazy=lazy)  # fmt: skip

    @cached_property
    def scheduler(self) -> Scheduler:
        return self.get_scheduler()

    @cached_property
    def lease(self) -> beat_lease.LeaderLease:
        name = self.hostname or f"celerybeat@{os.uname().nodename}:{os.getpid()}"
        return beat_lease.LeaderLease(self.app.engine.broker, self.lease_term, name=name)

    def start(self, embedded_process: bool = False,
              sleep: Callable[[float], Any] | None = None) -> None:  # fmt: skip
        """Run until ``stop()``; ``sleep(seconds)`` waits between ticks (default: until
        ``stop()`` or the time)."""
        sleep = sleep or self._is_shutdown.wait
        self._embedded = embedded_process
        scheduler = self.scheduler
        logger.info("beat: Starting (lease term %s s)...", self.lease_term)
        try:
            while not self._is_shutdown.is_set():
                interval = self._step(scheduler)
                if interval and interval > 0:
                    sleep(min(interval, self.lease.check_interval))
                    if self.leading and scheduler.should_sync():
                        scheduler._do_sync()
        finally:
            self.sync()

    def _step(self, scheduler: Scheduler) -> float:
        """One pass: tick when leading; the seconds to wait."""
        try:
            leads = self.lease.hold()
        except Exception as exc:
            logger.warning("beat: cannot reach the broker for the lease (%s: %s); not "
                           "sending until it can", type(exc).__name__, exc)  # fmt: skip
            leads = False
        if not leads:
            if self.leading:
                logger.warning("beat: another beat leads now; waiting")
                self.leading = False
            return self.lease.check_interval
        if not self.leading:
            self._take_over(scheduler)
        return scheduler.tick()

    def _take_over(self, scheduler: Scheduler) -> None:
        """Become the leader: send ``beat_init`` the first time, carry on from the last
        runs recorded by any beat or worker."""
        self.leading = True
        logger.info("beat: leading the namespace %r", self.app.namespace)
        if not self._initialised:
            self._initialised = True
            signals.beat_init.send(sender=self)
            if self._embedded:
                signals.beat_embedded_init.send(sender=self)
        catch_up(self.app, scheduler)

    def sync(self) -> None:
        """Close the scheduler (saving it) and give up the lease."""
        try:
            if "scheduler" in self.__dict__:
                self.scheduler.close()
        finally:
            try:
                if "lease" in self.__dict__:
                    self.lease.release()
            except Exception as exc:
                logger.warning("beat: could not release the lease: %s", exc)
            self.leading = False
            self._is_stopped.set()

    def stop(self, wait: bool = False) -> None:
        """Ask the loop to stop; ``wait`` until it did."""
        logger.info("beat: Shutting down...")
        self._is_shutdown.set()
        if wait:
            self._is_stopped.wait()


def catch_up(app: Celery, scheduler: Scheduler) -> None:
    """Give each entry the latest run recorded in the broker (by the previous leader, or
    by workers firing ``beat_schedule``) when later than its own, so it is not sent again."""
    broker = app.engine.broker
    try:
        entries = list(scheduler.schedule.values())
    except Exception:
        logger.exception("beat: cannot read the schedule to carry on from the last runs")
        return
    for entry in entries:
        runs = [beat_lease.last_run(broker, str(entry.name), h)
                for h in (beat_lease.LAST_RUN, beat_lease.WORKER_RUN)]  # fmt: skip
        recorded = max((r for r in runs if r is not None), default=None)
        if recorded is None:
            continue
        own = entry.last_run_at
        if own is None or maybe_make_aware(own) < recorded:
            tz = maybe_make_aware(own).tzinfo if own is not None else timezone.utc
            entry.last_run_at = recorded.astimezone(tz)
    scheduler._heap = None  # re-read the due times


class BeatThread(threading.Thread):
    """The beat service in a thread of a worker (``worker -B``): a worker service
    (``prepare`` builds the scheduler, so a bad one stops the worker at start)."""

    def __init__(self, app: Celery, **kwargs: Any):
        super().__init__(name="Beat", daemon=True)
        self.app = app
        self.service = Service(app, **kwargs)

    def prepare(self) -> None:
        """Build the scheduler; one that fails stops the worker with one line, status 1.
        The app is finalized first: ``on_after_finalize`` receivers may add entries."""
        from .bin.beat import prepare

        self.app.finalize(auto=True)
        error = prepare(self.service)
        if error:
            raise SystemExit(f"ERROR: {error}")

    def run(self) -> None:
        try:
            self.service.start(embedded_process=True)
        except Exception:
            logger.exception("beat: the embedded beat stopped")

    def stop(self) -> None:
        self.service.stop()
        if self.is_alive():
            self.join()


def EmbeddedService(app: Celery, max_interval: float | None = None,
                    **kwargs: Any) -> BeatThread:  # fmt: skip
    """Celery's ``EmbeddedService``: beat in a thread of this process (never a process)."""
    kwargs.pop("thread", None)
    return BeatThread(app, max_interval=max_interval, **kwargs)


__getattr__ = module_getattr(__name__)
