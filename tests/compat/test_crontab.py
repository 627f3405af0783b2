"""``crontab`` beat entries: next occurrences as Celery's, sent ahead by the crontab ticker."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab as celery_crontab

from spinach_compat import signals
from spinach_compat.app import beat
from spinach_compat.app.engine import compat_engine
from spinach_compat.exceptions import UnsupportedFeature
from spinach_compat.schedules import crontab, solar

UTC = timezone.utc
KOLKATA = ZoneInfo("Asia/Kolkata")  # +05:30 all year: no DST, a half-hour offset

SPECS = [
    {},
    {"minute": 0},
    {"minute": "*/15"},
    {"minute": 30, "hour": 3},
    {"minute": "0,30", "hour": "9-17", "day_of_week": "mon-fri"},
    {"minute": 0, "hour": 0, "day_of_week": "sun"},
    {"minute": "5-50/5", "hour": "*/3"},
    {"minute": 59, "hour": 23, "day_of_week": "fri-mon"},
    {"minute": [1, 2, 58], "hour": {0, 12}},
    {"minute": 0, "hour": 7, "day_of_month": "1,15"},
    {"minute": 0, "hour": 0, "day_of_month": 31},
    {"minute": 45, "hour": 22, "day_of_month": "28-31", "month_of_year": "feb"},
    {"minute": 0, "hour": 12, "month_of_year": "*/3", "day_of_week": "tue,thu"},
    {"minute": 10, "hour": "22-2", "day_of_week": 6},
    {"minute": 0, "hour": 9, "day_of_month": 13, "day_of_week": "friday"},
    {"minute": "*/7", "hour": 4, "month_of_year": "nov-jan"},
]

INSTANTS = [
    datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
    datetime(2026, 2, 27, 23, 59, 59, tzinfo=UTC),
    datetime(2026, 3, 13, 8, 59, 30, tzinfo=UTC),
    datetime(2026, 6, 15, 12, 0, tzinfo=UTC),
    datetime(2026, 11, 30, 23, 45, 1, 500, tzinfo=UTC),
    datetime(2027, 12, 31, 18, 29, tzinfo=UTC),
    datetime(2028, 2, 28, 22, 45, tzinfo=UTC),  # a leap year
]


def _celery_next(spec: dict, after: datetime, tz) -> datetime:
    """Brute force with Celery's own expanded sets: UTC minutes, read in ``tz``."""
    cron = celery_crontab(**spec)
    moment = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(2_000_000):
        local = moment.astimezone(tz)
        if not (
            local.month in cron.month_of_year
            and local.day in cron.day_of_month
            and local.isoweekday() % 7 in cron.day_of_week
        ):
            moment += timedelta(minutes=24 * 60 - local.hour * 60 - local.minute)
        elif local.hour not in cron.hour:
            moment += timedelta(minutes=60 - local.minute)
        elif local.minute in cron.minute:
            return local
        else:
            moment += timedelta(minutes=1)
    raise AssertionError("no occurrence found")


@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_fields_expand_as_celery(spec):
    ours, theirs = crontab(**spec), celery_crontab(**spec)
    for field in ("minute", "hour", "day_of_week", "day_of_month", "month_of_year"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("tz", [UTC, KOLKATA], ids=["UTC", "Asia/Kolkata"])
@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_next_occurrence_as_celery(spec, tz):
    cron = crontab(**spec)
    for after in INSTANTS:
        expected = _celery_next(spec, after, tz)
        found = cron.next_after(after, tz)
        assert found == expected and found.utcoffset() == expected.utcoffset(), after
        assert found > after
        # chained: the next few occurrences too
        for _ in range(3):
            expected, found = _celery_next(spec, found, tz), cron.next_after(found, tz)
            assert found == expected


@pytest.mark.parametrize("spec", SPECS[:8], ids=repr)
def test_next_occurrence_as_celery_remaining_delta_in_utc(spec):
    """Celery's own computation, from a run on the schedule, agrees too."""
    cron, theirs = crontab(**spec), celery_crontab(**spec)
    last = cron.next_after(INSTANTS[3])
    for _ in range(20):
        start, delta, _now = theirs.remaining_delta(last, tz=UTC)
        last_found = cron.next_after(last)
        assert last_found == start + delta
        last = last_found


@pytest.mark.parametrize(
    "field, spec",
    [
        ("minute", "1,13,30-45,50-59/2"),
        ("minute", "59-1"),
        ("hour", "*/4"),
        ("day_of_week", "fri-mon"),
        ("day_of_week", "SUNDAY,Wed"),
        ("day_of_week", "*/2"),
        ("day_of_month", "*/3"),
        ("month_of_year", "dec-feb"),
        ("month_of_year", "2-12/3"),
        ("month_of_year", "January"),
    ],
)
def test_field_syntax_as_celery(field, spec):
    assert getattr(crontab(**{field: spec}), field) == getattr(
        celery_crontab(**{field: spec}), field
    )


@pytest.mark.parametrize(
    "field, spec",
    [
        ("day_of_week", 7),
        ("day_of_week", "7"),
        ("day_of_week", "0-7"),
        ("minute", 60),
        ("hour", "24"),
        ("minute", "*/0"),
        ("minute", "5/10"),
        ("minute", "5-"),
        ("day_of_month", 0),
        ("month_of_year", "13"),
        ("day_of_week", "funday"),
    ],
)
def test_invalid_fields_refused_as_celery(field, spec):
    with pytest.raises(ValueError):
        celery_crontab(**{field: spec})
    with pytest.raises(ValueError):
        crontab(**{field: spec})


def test_impossible_date_refused_and_from_string():
    with pytest.raises(ValueError):
        crontab(day_of_month=31, month_of_year="feb")
    assert crontab.from_string("*/5 9-17 1 * mon") == crontab("*/5", "9-17", "mon", 1)
    with pytest.raises(ValueError):
        crontab(minute="")  # Celery: a ParseException
    with pytest.raises(ValueError, match="aware"):
        crontab().next_after(datetime(2026, 1, 1))


def test_occurrences_in_a_window():
    after = datetime(2026, 3, 2, 8, 58, 30, tzinfo=UTC)
    found = crontab(minute="*").occurrences(after, after + timedelta(minutes=2))
    assert found == [
        datetime(2026, 3, 2, 8, 59, tzinfo=UTC),
        datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    ]
    edge = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert crontab(minute="*").occurrences(edge, edge + timedelta(minutes=2)) == [
        edge + timedelta(minutes=1),
        edge + timedelta(minutes=2),
    ]


# -- the ticker ---------------------------------------------------------------------------

_apps = itertools.count()


def _cron_app(make_app, entries, **conf):
    app = make_app(f"cron{next(_apps)}", **conf)

    @app.task(name="cron.ping")
    def ping(*args, **kwargs):
        return "pong"

    app.conf.beat_schedule = entries
    return app


def _ticker(app):
    assert beat.CRONTAB_TICKER in app.register_beat_schedule()
    task = app._native.get(beat.CRONTAB_TICKER)
    assert task.periodicity == beat.CRONTAB_TICK
    return task.func


def _waiting(app) -> dict[str, datetime]:
    return {job.id: job.at for job in app.engine.broker.scheduled_jobs()}


ENTRIES = {
    "quarter": {"task": "cron.ping", "schedule": crontab(minute="*/15"), "args": (1,)},
    "nightly": {"task": "cron.ping", "schedule": crontab(minute=0, hour=0), "kwargs": {"a": 1}},
}


def test_ticker_sends_each_occurrence_of_the_window_once(make_app):
    app = _cron_app(make_app, ENTRIES)
    tick = _ticker(app)
    now = datetime(2030, 3, 1, 23, 58, 10, tzinfo=UTC)
    tick(now)
    midnight = datetime(2030, 3, 2, tzinfo=UTC)
    expected = {
        beat.occurrence_id("quarter", midnight): midnight,
        beat.occurrence_id("nightly", midnight): midnight,
    }
    # memory broker's clock is real time: 2030 is in its future, so both wait
    assert _waiting(app) == expected
    tick(now)  # the same tick again
    tick(now + timedelta(seconds=30))  # an overlapping window
    assert _waiting(app) == expected
    tick(now + timedelta(minutes=15))  # the next window reaches 00:15
    quarter = midnight + timedelta(minutes=15)
    assert _waiting(app) == {**expected, beat.occurrence_id("quarter", quarter): quarter}
    jobs = {job.id: job for job in app.engine.broker.scheduled_jobs()}
    job = jobs[beat.occurrence_id("nightly", midnight)]
    assert (job.task_name, job.queue, job.task_kwargs) == ("cron.ping", "celery", {"a": 1})


def test_schedule_crontab_entries_returns_what_it_sends(make_app):
    app = _cron_app(make_app, ENTRIES)
    now = datetime(2030, 3, 2, 10, 14, tzinfo=UTC)
    sent = beat.schedule_crontab_entries(app, ENTRIES, now)
    at = datetime(2030, 3, 2, 10, 15, tzinfo=UTC)
    assert sent == [(beat.occurrence_id("quarter", at), at)]
    assert beat.occurrence_id("quarter", at) != beat.occurrence_id("nightly", at)
    assert beat.occurrence_id("quarter", at) != beat.occurrence_id("quarter", at + timedelta(1))


def test_two_workers_tickers_do_not_duplicate(make_app):
    first = _cron_app(make_app, ENTRIES)
    second = _cron_app(make_app, ENTRIES, spinach_namespace=first.namespace)
    engine = compat_engine(first.engine.broker.peer(), first.namespace)  # another worker
    engine.attach_tasks(second._native)
    second._engine = engine
    now = datetime(2030, 3, 1, 23, 58, tzinfo=UTC)
    _ticker(first)(now)
    _ticker(second)(now + timedelta(seconds=7))
    assert len(first.engine.broker.scheduled_jobs()) == 2
    assert _waiting(first) == _waiting(second)


def test_ticker_in_the_apps_timezone_with_options(make_app):
    entries = {
        "morning": {
            "task": "cron.ping",
            "schedule": crontab(minute=30, hour=7),
            "options": {"queue": "reports", "expires": 60, "countdown": 5},
        }
    }
    app = _cron_app(make_app, entries, timezone="Asia/Kolkata")
    seen = []

    def on_publish(sender=None, headers=None, **kwargs):
        seen.append((headers["id"], headers["eta"], headers["expires"]))

    signals.before_task_publish.connect(on_publish, weak=False)
    try:
        _ticker(app)(datetime(2030, 3, 2, 1, 59, tzinfo=UTC))  # 07:29 in Kolkata
    finally:
        signals.before_task_publish.disconnect(on_publish)
    occurrence = datetime(2030, 3, 2, 7, 30, tzinfo=KOLKATA)  # 02:00 UTC
    task_id = beat.occurrence_id("morning", occurrence)
    eta = occurrence + timedelta(seconds=5)
    assert seen == [(task_id, eta.isoformat(), (occurrence + timedelta(seconds=60)).isoformat())]
    assert _waiting(app) == {task_id: eta.astimezone(UTC)}
    (job,) = app.engine.broker.scheduled_jobs()
    assert job.queue == "reports"


def test_crontab_entries_register_one_ticker_and_solar_is_refused(make_app):
    app = _cron_app(make_app, {**ENTRIES, "every": {"task": "cron.ping", "schedule": 30}})
    names = app.register_beat_schedule()
    assert sorted(names) == ["celery.beat:every", beat.CRONTAB_TICKER]
    assert app._native.get(beat.CRONTAB_TICKER).queue == "celery"
    other = _cron_app(make_app, {"dusk": {"task": "cron.ping", "schedule": solar("dusk", 1, 2)}})
    with pytest.raises(UnsupportedFeature, match="solar"):
        other.register_beat_schedule()


def test_worker_schedules_the_next_minute_at_start(make_app, recorder):
    """End to end on worker threads: the ticker runs at worker start and sends ahead."""
    app = _cron_app(make_app, {"minutely": {"task": "cron.ping", "schedule": crontab()}})

    def on_publish(sender=None, headers=None, **kwargs):
        recorder.add("published", headers["id"], headers["eta"])

    signals.before_task_publish.connect(on_publish, weak=False)
    try:
        app.start_worker(concurrency=1, block=False)
        recorder.wait_for(lambda events: len(events) >= 2)  # the window holds 2 minutes
    finally:
        signals.before_task_publish.disconnect(on_publish)
    published = app.now()
    boundary = (published + timedelta(seconds=1)).replace(second=0, microsecond=0)
    boundary += timedelta(minutes=1)
    task_id = beat.occurrence_id("minutely", boundary)
    assert ("published", task_id, boundary.isoformat()) in recorder.named("published")
    assert _waiting(app)[task_id] == boundary


def test_beat_jobs_of_legacy_tasks_run_on_the_default_queue(make_app):
    """No native worker consumes a legacy task's queue: its beat job must run elsewhere."""
    entries = {
        "old-report": {"task": "old.report", "schedule": 30},
        "old-nightly": {"task": "old.nightly", "schedule": crontab(minute=0, hour=3)},
    }
    app = make_app(
        beat_schedule=entries, spinach_legacy_tasks=["old.*"],
        task_routes={"old.*": {"queue": "legacy"}},
    )  # fmt: skip
    app.register_beat_schedule()
    assert app._native.get("celery.beat:old-report").queue == "celery"
    assert app._native.get(beat.CRONTAB_TICKER).queue == "celery"


def test_register_native_task_keeps_the_task_of_a_name(app):
    def first():
        pass

    task = app.register_native_task(first, name="beat:x", queue="q", periodicity=timedelta(1))
    again = app.register_native_task(lambda: None, name="beat:x", queue="other")
    assert again is task
    assert (task.func, task.queue, task.max_retries) == (first, "q", 0)
