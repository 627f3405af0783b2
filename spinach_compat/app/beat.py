"""``beat_schedule`` on the native engine's periodic tasks: no separate beat process.

Each entry becomes a native periodic task named ``celery.beat:<entry name>`` with the
entry's period (``spinach`` ``periodicity``). When due, the broker queues one job of it for
the whole namespace, however many workers run; that job publishes the entry's task with
its ``args``, ``kwargs`` and ``options`` (``queue``, ``expires``, ``headers``, ...), as
Celery's beat would. The job runs on the queue the entry's task goes to, so a worker
consuming that queue sends it.

Differences from Celery's beat, to know when migrating:

- Every worker registers the schedule (the native engine replaces the namespace's
  periodic tasks with those of each worker that starts), so the schedule runs as soon as
  one worker runs: ``-B`` is accepted and changes nothing, and no ``celery beat`` process
  is needed (``spinach-compat beat`` says so and exits).
- A new entry (or one whose period changed) is first due when a worker registers it, not
  one period later; afterwards it stays on its grid, and missed periods fire once.
- ``crontab`` and ``solar`` schedules, ``relative=True`` and custom schedulers
  (``beat_scheduler``, django-celery-beat) are refused: the worker does not start.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..exceptions import UnsupportedFeature
from ..schedules import schedule

if TYPE_CHECKING:
    from .base import Celery

#: Prefix of the native periodic tasks of beat entries.
BEAT_PREFIX = "celery.beat:"

#: beat_scheduler values that mean Celery's default, file-based scheduler.
DEFAULT_SCHEDULERS = frozenset(
    {"celery.beat:PersistentScheduler", "celery.beat.PersistentScheduler"}
)


def register_beat_schedule(app: Celery) -> list[str]:
    """Register every ``beat_schedule`` entry as a native periodic task; their names."""
    scheduler = app.conf.get("beat_scheduler")
    entries = app.conf.beat_schedule or {}
    if entries and scheduler and str(scheduler) not in DEFAULT_SCHEDULERS:
        raise UnsupportedFeature(
            f"beat_scheduler={scheduler!r} is not supported by spinach_compat: beat_schedule "
            "entries run on native periodic tasks (see migration_guide/)"
        )
    names = []
    for name, entry in entries.items():
        native = BEAT_PREFIX + name
        if native not in app._native:
            period = period_of(name, entry.get("schedule"))
            queue = _queue_of(app, entry)
            app._native.add(
                _sender(app, entry), name=native, queue=queue, max_retries=0,
                periodicity=period,
            )  # fmt: skip
        names.append(native)
    return names


def period_of(name: str, value: Any) -> timedelta:
    """The period of a schedule: a number of seconds, a ``timedelta`` or a ``schedule``."""
    if isinstance(value, schedule) and not value.relative and value.run_every:
        value = value.run_every
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    if isinstance(value, timedelta) and value > timedelta(0):
        return value
    raise UnsupportedFeature(
        f"beat_schedule entry {name!r}: schedule {value!r} is not supported by "
        "spinach_compat; only fixed periods (seconds, timedelta, schedule()) are, crontab "
        "and solar are not yet (see migration_guide/)"
    )


def _queue_of(app: Celery, entry: dict) -> str:
    options = entry.get("options") or {}
    return options.get("queue") or app.queue_of(app.tasks.get(entry["task"]), entry["task"])


def _sender(app: Celery, entry: dict) -> Any:
    """The function of the periodic task: publish the entry's task, as beat does."""
    task_name = entry["task"]
    args, kwargs = list(entry.get("args") or ()), dict(entry.get("kwargs") or {})
    options = dict(entry.get("options") or {})

    def send_entry() -> None:
        app.send_task(task_name, args, kwargs, **options)

    send_entry.__name__ = send_entry.__qualname__ = f"beat[{task_name}]"
    return send_entry
