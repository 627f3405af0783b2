"""``beat_schedule`` on the native engine's periodic tasks: no beat process needed.

Each entry becomes a native periodic task named ``celery.beat:<entry name>`` with the
entry's period (``spinach`` ``periodicity``). When due, the broker queues one job of it for
the whole namespace, however many workers run; that job publishes the entry's task with
its ``args``, ``kwargs`` and ``options`` (``queue``, ``expires``, ``headers``, ...), as
Celery's beat would. The job runs on the queue the entry's task goes to, so a worker
consuming that queue sends it (on ``task_default_queue`` for a task sent to legacy Celery
workers, whose queue native workers do not consume).

``app.add_periodic_task`` adds to ``beat_schedule`` the entry Celery's would
(``periodic_task_entry``), so entries added by an ``on_after_finalize`` receiver (sent when
a worker starts, before it registers the schedule) run as any other.

Differences from Celery's beat, to know when migrating:

- Every worker registers the schedule (the native engine replaces the namespace's
  periodic tasks with those of each worker that starts), so the schedule runs as soon as
  one worker runs, with no ``celery beat`` process. When a beat process leads
  (``spinach_compat.beat``, ``spinach-compat beat`` or ``worker -B``), it owns the
  schedule: the workers' periodic tasks send nothing while its lease is held, nor an
  entry a beat sent less than half a period before (``beat_owns``), and the crontab
  ticker schedules nothing; each send is recorded (``beat_lease.record_run``) so that a
  beat taking over starts from it.
- Each worker declares its beat periodic tasks; those no live worker declares stop
  firing when a worker starts (``spinach_compat.app.beat_declarations``).
- A new entry (or one whose period changed) is first due when a worker registers it, not
  one period later; afterwards it stays on its grid, and missed periods fire once.
- ``solar`` schedules, ``relative=True`` and schedule classes of a project's own are
  refused: the worker does not start (``beat_scheduler`` is the beat process's: see
  ``spinach_compat.beat``).

``crontab`` entries: one native periodic task per app, the ticker ``celery.beat[crontab]``
(every ``CRONTAB_TICK``, on the queue of the first crontab entry by name), schedules each
crontab entry's occurrences of the next two ticks ahead: every occurrence in
``(now, now + 2 * CRONTAB_TICK]`` (minutes of the app's ``timezone``, UTC by default) is
sent with ``eta=occurrence`` and a task id derived from the entry name and the occurrence
(``occurrence_id``). The native enqueue stores a job id once while it is queued, waiting
for its eta or running, so overlapping windows, a tick run twice and several workers never
send an occurrence twice; the eta waits in the broker (Redis), not in a worker's memory,
so the task is due on time even if the worker that scheduled it stops. An entry whose task
goes to legacy Celery workers (``spinach_legacy_tasks``, ``'legacy': True`` routes) is
published by kombu, without the native dedup: each of its occurrences is first claimed
(``claim_occurrence``: a claim in the broker's shared state, ``SET NX`` of a namespace key
in Redis, kept ``LEGACY_CLAIM_MARGIN`` past the occurrence), and only the ticker
that claimed it sends it; a send that raises gives the claim back. Like Celery's beat, an
occurrence when no worker runs is skipped, not caught up. Limits:

- An occurrence is sent at most once only while its job is stored: a ticker seeing it
  still ahead after it ran (a worker clock behind by more than the gap) would send it again.
- A missed tick (every worker down or busy beyond one tick) loses the occurrences due before
  the next tick runs; a new worker registering the ticker runs it at once (as any new
  periodic task), but a crontab entry added to a namespace whose ticker already runs is
  first scheduled at the next tick, up to ``CRONTAB_TICK`` later.
- A numeric ``expires`` (or ``countdown``) in the entry's options counts from the
  occurrence, as when beat sends it on time.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ..exceptions import UnsupportedFeature
from ..interop import legacy
from ..schedules import crontab, schedule
from . import beat_lease
from .defaults import DEFAULTS

if TYPE_CHECKING:
    from .base import Celery

#: Prefix of the native periodic tasks of beat entries.
BEAT_PREFIX = "celery.beat:"

#: The default ``beat_schedule``: one dict for every app, never changed in place.
DEFAULT_BEAT_SCHEDULE = DEFAULTS["beat_schedule"]

#: The native periodic task scheduling the crontab entries (not a ``BEAT_PREFIX`` name, so
#: no entry name can clash with it).
CRONTAB_TICKER = "celery.beat[crontab]"

#: The ticker's period; each run schedules the occurrences of the next two periods.
CRONTAB_TICK = timedelta(seconds=60)

#: How long a legacy occurrence's claim outlives the occurrence: a worker whose clock is
#: behind by less than this never sends it again.
LEGACY_CLAIM_MARGIN = timedelta(hours=1)

logger = logging.getLogger("spinach_compat.beat")

_OCCURRENCE_IDS = uuid.UUID("5b2f4d0e-8c1a-4b7e-9f3d-2a6c0e1b7d94")


def register_beat_schedule(app: Celery) -> list[str]:
    """Register every ``beat_schedule`` entry as a native periodic task; their names."""
    entries = app.conf.beat_schedule or {}
    names = []
    crontabs = {n: e for n, e in entries.items() if isinstance(e.get("schedule"), crontab)}
    if crontabs:
        queue = _queue_of(app, crontabs[min(crontabs)])
        app.register_native_task(
            _ticker(app, crontabs), name=CRONTAB_TICKER, queue=queue, periodicity=CRONTAB_TICK
        )
        names.append(CRONTAB_TICKER)
    for name, entry in entries.items():
        if name in crontabs:
            continue
        native = BEAT_PREFIX + name
        period = period_of(name, entry.get("schedule"))
        app.register_native_task(
            _sender(app, name, entry, period), name=native, queue=_queue_of(app, entry),
            periodicity=period,
        )  # fmt: skip
        names.append(native)
    _declare(app, names)
    return names


def _declare(app: Celery, names: list[str]) -> None:
    """Declare this worker's beat periodic tasks; stop those no live worker declares (see
    ``beat_declarations``). A broker not reachable yet skips it (the worker waits for it)."""
    from .beat_declarations import declare_and_prune

    def is_beat_task(name: str) -> bool:
        return name.startswith(BEAT_PREFIX) or name == CRONTAB_TICKER

    try:
        declare_and_prune(app.engine.broker, names, is_beat_task, id(app))
    except Exception as exc:
        logger.warning("Could not declare the beat periodic tasks (%s: %s); orphans of "
                       "other apps keep firing until a worker declares them", type(exc).__name__,
                       exc)  # fmt: skip


def periodic_task_entry(
    app: Celery, schedule: Any, sig: Any, args: Any, kwargs: Any, name: str | None,
    options: dict,
) -> tuple[str, dict]:  # fmt: skip
    """The ``beat_schedule`` key and entry of ``app.add_periodic_task``, as Celery makes
    them: ``name``, else the signature's repr; the signature's arguments (``args``
    prepended, ``kwargs`` merged) and options (``options`` over them)."""
    from ..canvas import Signature

    if isinstance(sig, Signature):
        sig = sig.clone(args, dict(kwargs) if kwargs else {})
    else:
        sig = Signature(sig.name, args, dict(kwargs) if kwargs else {}, app=app)
    entry = {
        "schedule": schedule, "task": sig.name, "args": sig.args, "kwargs": sig.kwargs,
        "options": {**sig.options, **options},
    }  # fmt: skip
    return name or repr(sig), entry


def add_beat_entry(app: Celery, key: str, entry: dict, name: str | None) -> None:
    """Add an entry to ``app.conf.beat_schedule``: in place, as Celery, unless it is still
    the defaults' (shared by every app), which it replaces."""
    conf = app.conf
    if name is None and key in (conf.beat_schedule or {}):
        logger.warning(
            "Periodic task key=%r shadowed a previous unnamed periodic task: pass a name "
            "to add_periodic_task to keep both", key,
        )  # fmt: skip
    current = conf.get("beat_schedule")
    if current is None or current is DEFAULT_BEAT_SCHEDULE:
        conf.beat_schedule = {key: entry}
    else:
        current[key] = entry


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
        "spinach_compat; only fixed periods (seconds, timedelta, schedule()) and crontab "
        "are, solar is not (see migration_guide/)"
    )


def _queue_of(app: Celery, entry: dict) -> str:
    """The native queue of an entry's beat job: its task's, so that a worker consuming it
    sends it; for a task sent to legacy Celery workers, whose queue no native worker
    consumes, ``task_default_queue``."""
    if legacy.is_legacy(app, entry["task"]):
        return app.conf.task_default_queue
    options = entry.get("options") or {}
    return options.get("queue") or app.queue_of(app.tasks.get(entry["task"]), entry["task"])


def _sender(app: Celery, name: str, entry: dict, period: timedelta) -> Any:
    """The function of the periodic task: publish the entry's task, as beat does, unless
    a beat process owns the schedule (``beat_owns``); note the run for a beat taking over."""
    task_name = entry["task"]
    args, kwargs = list(entry.get("args") or ()), dict(entry.get("kwargs") or {})
    options = dict(entry.get("options") or {})

    def send_entry() -> None:
        broker = app.engine.broker
        now = datetime.now(timezone.utc)
        if beat_owns(broker, name, period, now):
            return
        beat_lease.record_run(broker, name, now, beat_lease.WORKER_RUN)
        app.send_task(task_name, args, kwargs, **options)

    send_entry.__name__ = send_entry.__qualname__ = f"beat[{task_name}]"
    return send_entry


def beat_owns(broker: Any, name: str, period: timedelta, now: datetime) -> bool:
    """Whether the workers leave the entry ``name`` to a beat process: one leads, or one
    sent it less than half a period ago (it stopped since: the workers carry on from
    there rather than send it again at once)."""
    if beat_lease.beat_alive(broker):
        return True
    last = beat_lease.last_run(broker, name)
    return last is not None and now - last < period / 2


def occurrence_id(name: str, occurrence: datetime) -> str:
    """The task id of a crontab entry's occurrence: the same for every worker and tick."""
    return str(uuid.uuid5(_OCCURRENCE_IDS, f"{name}@{int(occurrence.timestamp())}"))


def schedule_crontab_entries(
    app: Celery, entries: dict[str, dict], now: datetime | None = None
) -> list[tuple[str, datetime]]:
    """Send every occurrence of the crontab ``entries`` in ``(now, now + 2 ticks]``.

    Each with ``eta`` = the occurrence and the task id ``occurrence_id``; the (task id,
    eta) pairs sent, an id already stored (queued, waiting or running) being left as is.
    An occurrence of a task for legacy Celery workers is sent only by the caller that
    claims it (``claim_occurrence``); one claimed before is left out.
    """
    now = now or app.now()
    until = now + 2 * CRONTAB_TICK
    tz = app.timezone
    sent = []
    for name, entry in entries.items():
        for occurrence in entry["schedule"].occurrences(now, until, tz):
            task_id = occurrence_id(name, occurrence)
            if _send_occurrence(app, entry, task_id, occurrence, now):
                sent.append((task_id, occurrence))
    return sent


def _send_occurrence(
    app: Celery, entry: dict, task_id: str, occurrence: datetime, now: datetime
) -> bool:
    """Send one occurrence; False for a legacy one claimed before (not sent again)."""
    task_name = entry["task"]
    to_legacy = legacy.is_legacy(app, task_name)
    if to_legacy and not claim_occurrence(app, task_id, occurrence - now + LEGACY_CLAIM_MARGIN):
        return False
    args, kwargs = list(entry.get("args") or ()), dict(entry.get("kwargs") or {})
    eta, options = _options_at(dict(entry.get("options") or {}), occurrence)
    try:
        app.send_task(task_name, args, kwargs, task_id=task_id, eta=eta, **options)
    except BaseException:
        if to_legacy:  # not sent: a later tick may send it
            release_occurrence(app, task_id)
        raise
    return True


def _claim_name(task_id: str) -> str:
    """The broker's shared-state entry claiming a legacy occurrence."""
    return f"celery_beat/legacy_claims/{task_id}"


def claim_occurrence(app: Celery, task_id: str, ttl: timedelta) -> bool:
    """Claim the occurrence ``task_id`` for ``ttl``, atomically for the namespace: whether
    this call claimed it (False: claimed before, by any ticker of any worker)."""
    return app.engine.broker.claim(_claim_name(task_id), ttl.total_seconds())


def release_occurrence(app: Celery, task_id: str) -> None:
    """Give back the claim of ``task_id`` (its send failed)."""
    app.engine.broker.delete([_claim_name(task_id)])


def _options_at(options: dict, occurrence: datetime) -> tuple[datetime, dict]:
    """The eta and options of an occurrence: relative times count from it, as in beat."""
    countdown = options.pop("countdown", None)
    options.pop("eta", None)
    eta = occurrence + timedelta(seconds=float(countdown or 0))
    expires = options.get("expires")
    if isinstance(expires, (int, float)) and not isinstance(expires, bool):
        options["expires"] = occurrence + timedelta(seconds=expires)
    return eta, options


def _ticker(app: Celery, entries: dict[str, dict]) -> Any:
    """The function of the crontab ticker: schedule the next two ticks' occurrences."""

    def tick_crontab(now: datetime | None = None) -> None:
        if beat_lease.beat_alive(app.engine.broker):
            return  # a beat process sends them (with the same occurrence ids)
        schedule_crontab_entries(app, entries, now)

    return tick_crontab
