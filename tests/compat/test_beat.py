"""The beat scheduler API and the leader lease, in-process (memory broker, injected clocks).

Real processes (the beat command, django-celery-beat, redbeat, two beats over one Redis)
are in ``test_beat_schedulers.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from spinach.brokers.memory import MemoryBroker
from spinach_compat import signals
from spinach_compat.app import beat as worker_beat
from spinach_compat.app import beat_declarations, beat_lease
from spinach_compat.app.beat_schedulers import BeatSchedulerError, load_scheduler_class
from spinach_compat.beat import (
    PersistentScheduler,
    ScheduleEntry,
    Scheduler,
    Service,
    catch_up,
)
from spinach_compat.schedules import crontab, schedule


class Clock:
    """A settable clock for brokers and schedules."""

    def __init__(self, start: float = 1_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, timezone.utc)


# -- the lease -------------------------------------------------------------------------------


def test_one_leader_at_a_time_and_the_next_takes_over_within_two_terms() -> None:
    clock = Clock()
    first_broker = MemoryBroker(clock=clock)
    first = beat_lease.LeaderLease(first_broker, term=10, clock=clock)
    second = beat_lease.LeaderLease(first_broker.peer(), term=10, clock=clock)
    assert first.hold() and not second.hold()
    for _ in range(20):  # the leader keeps leading while it checks every half term
        clock.now += first.check_interval
        assert first.hold() and not second.hold()
    assert beat_lease.beat_alive(first_broker)
    dead_at = clock.now  # the leader dies: it stops calling hold()
    while not second.hold():
        clock.now += second.check_interval
        assert clock.now - dead_at <= 2 * second.term + second.check_interval
    assert not first.hold()  # back, it finds the lease taken and stays a standby


def test_a_released_lease_is_taken_at_the_next_check() -> None:
    clock = Clock()
    broker = MemoryBroker(clock=clock)
    first = beat_lease.LeaderLease(broker, term=10, clock=clock)
    second = beat_lease.LeaderLease(broker.peer(), term=10, clock=clock)
    clock.now += 7  # past the middle: the leader also holds the next term
    assert first.hold() and not second.hold()
    first.release()
    assert not beat_lease.beat_alive(broker)
    assert second.hold()


def test_the_lease_term_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        beat_lease.LeaderLease(MemoryBroker(), term=0)


# -- schedulers ------------------------------------------------------------------------------


@pytest.fixture
def sent(app, monkeypatch) -> list[tuple]:
    """What the app publishes, recorded instead of sent."""
    calls: list[tuple] = []

    def send_task(name, args=None, kwargs=None, **options):
        calls.append((name, args, kwargs, options))

    monkeypatch.setattr(app, "send_task", send_task)
    return calls


def _every(seconds: float, clock: Clock) -> schedule:
    return schedule(seconds, nowfun=clock.dt)


def test_tick_sends_each_due_entry_once_per_period(app, sent) -> None:
    clock = Clock()
    app.conf.beat_schedule = {
        "fast": {"task": "proj.fast", "schedule": _every(10, clock), "args": (1,),
                 "options": {"queue": "q1"}},
        "slow": {"task": "proj.slow", "schedule": _every(60, clock)},
    }  # fmt: skip
    scheduler = Scheduler(app)
    assert scheduler.tick() == pytest.approx(10, abs=0.1)  # nothing due yet
    clock.now += 10
    for _ in range(3):
        scheduler.tick()
    assert [(n, a, o["queue"]) for n, a, _, o in sent] == [("proj.fast", [1], "q1")]
    assert sent[0][3]["headers"] == {"celery_beat_task": True}
    assert scheduler.schedule["fast"].total_run_count == 1
    clock.now += 50
    while scheduler.tick() == 0:
        pass
    assert [n for n, *_ in sent] == ["proj.fast", "proj.fast", "proj.slow"]


def test_a_failing_entry_does_not_stop_the_others(app, monkeypatch, caplog) -> None:
    clock = Clock()
    app.conf.beat_schedule = {"bad": {"task": "proj.bad", "schedule": _every(5, clock)}}

    def send_task(name, *args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(app, "send_task", send_task)
    scheduler = Scheduler(app)
    clock.now += 5
    assert scheduler.tick() == 0
    assert "Couldn't apply scheduled task bad: broker down" in caplog.text
    assert scheduler.schedule["bad"].total_run_count == 1  # reserved first, as in Celery


def test_persistent_scheduler_keeps_runs_across_restarts(app, sent, tmp_path) -> None:
    clock = Clock()
    app.conf.beat_schedule = {"job": {"task": "proj.job", "schedule": _every(10, clock)}}
    path = str(tmp_path / "celerybeat-schedule")
    first = PersistentScheduler(app, schedule_filename=path)
    clock.now += 10
    first.tick()
    first.close()
    again = PersistentScheduler(app, schedule_filename=path)
    entry = again.schedule["job"]
    assert entry.total_run_count == 1 and entry.last_run_at == clock.dt()
    assert again.tick() == pytest.approx(10, abs=0.1)  # not due again before its period
    assert len(sent) == 1


def test_a_celery_shelve_file_is_replaced_not_unpickled(app, tmp_path, caplog) -> None:
    path = tmp_path / "celerybeat-schedule"
    path.write_bytes(b"\x80\x04\x95 not json")
    app.conf.beat_schedule = {"job": {"task": "proj.job", "schedule": 10}}
    scheduler = PersistentScheduler(app, schedule_filename=str(path))
    assert scheduler.schedule["job"].total_run_count == 0
    assert "Replacing the unreadable schedule file" in caplog.text


def test_custom_scheduler_and_entry_subclasses_run(app, sent) -> None:
    clock = Clock()

    class CountingEntry(ScheduleEntry):
        pass

    class ListScheduler(Scheduler):
        Entry = CountingEntry
        synced = 0

        def setup_schedule(self) -> None:
            self.add(name="added", task="proj.added", schedule=_every(1, clock))

        def sync(self) -> None:
            self.synced += 1

    scheduler = ListScheduler(app, sync_every_tasks=1)
    assert isinstance(scheduler.schedule["added"], CountingEntry)
    clock.now += 1
    scheduler.tick()
    assert [n for n, *_ in sent] == ["proj.added"] and scheduler.synced == 1


def test_crontab_entry_of_beat_schedule_uses_the_tickers_occurrence_id(app, sent) -> None:
    app.conf.beat_schedule = {"cron": {"task": "proj.cron", "schedule": crontab()}}
    scheduler = Scheduler(app)
    entry = scheduler.schedule["cron"]
    scheduler.apply_async(entry)
    minute = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    assert sent[0][3]["task_id"] in {
        worker_beat.occurrence_id("cron", minute),
        worker_beat.occurrence_id("cron", minute - timedelta(minutes=1)),  # a minute turned
    }


# -- loading schedulers ----------------------------------------------------------------------


def test_scheduler_classes_load_by_path_alias_or_celery_name() -> None:
    assert load_scheduler_class("celery.beat:PersistentScheduler") is PersistentScheduler
    assert load_scheduler_class("celery.beat.Scheduler") is Scheduler
    assert load_scheduler_class(PersistentScheduler) is PersistentScheduler


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("no_such_module.sub:Scheduler", "importing 'no_such_module.sub' failed"),
        ("spinach_compat.beat:NoSuch", "has no attribute 'NoSuch'"),
        ("nodots", "not a dotted path"),
        ("spinach_compat.beat:ScheduleEntry", "not a subclass of celery.beat.Scheduler"),
        ("celery.beat.Scheduler", None),
    ],
)
def test_bad_scheduler_paths_name_the_value_and_the_cause(spec, says) -> None:
    if says is None:  # real Celery's class, as a module imported without the shim gets it
        import celery.beat

        with pytest.raises(BeatSchedulerError, match="SPINACH_AS_CELERY=1"):
            load_scheduler_class(celery.beat.Scheduler)
        return
    with pytest.raises(BeatSchedulerError) as raised:
        load_scheduler_class(spec)
    assert repr(spec) in str(raised.value) and says in str(raised.value)


# -- the service: lease, takeover, workers ---------------------------------------------------


def test_a_standby_service_takes_over_from_the_recorded_last_run(app, sent, tmp_path) -> None:
    clock = Clock(datetime.now(timezone.utc).timestamp())
    app.conf.beat_schedule = {"job": {"task": "proj.job", "schedule": _every(30, clock)}}
    broker = app.engine.broker
    beat_lease.record_run(broker, "job", clock.dt() - timedelta(seconds=5))
    scheduler = PersistentScheduler(app, schedule_filename=str(tmp_path / "s"))
    scheduler.schedule["job"].last_run_at = clock.dt() - timedelta(hours=1)  # stale file
    catch_up(app, scheduler)
    assert scheduler.tick() == pytest.approx(25, abs=0.5)  # not sent again at once
    assert sent == []


def test_service_sends_beat_init_once_when_it_first_leads(app, sent, tmp_path) -> None:
    got = []

    def receiver(sender, **kwargs):
        got.append(sender)

    signals.beat_init.connect(receiver)
    app.conf.beat_schedule = {"job": {"task": "proj.job", "schedule": 1}}
    service = Service(app, schedule_filename=str(tmp_path / "s"), lease_term=5)

    def sleep(seconds: float) -> None:
        if len(sent) >= 1:
            service.stop()
        service.scheduler.schedule["job"].last_run_at -= timedelta(seconds=1)  # due

    try:
        service.start(sleep=sleep)
    finally:
        signals.beat_init.disconnect(receiver)
    assert got == [service] and [n for n, *_ in sent] == ["proj.job"]
    assert not beat_lease.beat_alive(app.engine.broker)  # released at stop


def test_workers_leave_beat_schedule_to_a_leading_beat(app, sent) -> None:
    app.conf.beat_schedule = {"job": {"task": "proj.job", "schedule": 10}}
    app.register_beat_schedule()
    send_entry = app._native.get(worker_beat.BEAT_PREFIX + "job").func
    lease = beat_lease.LeaderLease(app.engine.broker, term=5)
    assert lease.hold()
    send_entry()
    assert sent == []
    lease.release()
    send_entry()  # no beat alive: the worker sends it, and notes when
    assert [n for n, *_ in sent] == ["proj.job"]
    assert beat_lease.last_run(app.engine.broker, "job", beat_lease.WORKER_RUN) is not None


def test_workers_do_not_resend_what_a_stopped_beat_just_sent(app, sent) -> None:
    app.conf.beat_schedule = {"job": {"task": "proj.job", "schedule": 10}}
    app.register_beat_schedule()
    send_entry = app._native.get(worker_beat.BEAT_PREFIX + "job").func
    beat_lease.record_run(app.engine.broker, "job", datetime.now(timezone.utc))
    send_entry()
    assert sent == []


# -- periodic tasks no live worker declares --------------------------------------------------


def _periodic(app) -> set[str]:
    return {name for _, name in app.engine.broker.inspect_periodic_tasks()}


def test_a_beat_entry_no_live_worker_declares_stops_firing(make_app, redis_url,
                                                           monkeypatch) -> None:  # fmt: skip
    entries = {"add every 10": {"task": "proj.add", "schedule": 10}}
    old = make_app("orphans", broker=redis_url, backend=redis_url, beat_schedule=entries)
    old.start_worker(concurrency=1, block=False)
    new = make_app("orphans", broker=redis_url, backend=redis_url)  # same main, no entries
    new.register_beat_schedule()
    assert "celery.beat:add every 10" in _periodic(new)  # its worker is alive: kept
    old.stop_worker()
    monkeypatch.setattr(beat_declarations, "GRACE", 0.0)  # its declaration is not fresh now
    new.register_beat_schedule()  # the next worker to start drops it
    assert "celery.beat:add every 10" not in _periodic(new)


def test_solar_entries_are_logged_and_backend_cleanup_is_not_sent(app, sent, caplog) -> None:
    from spinach_compat.schedules import solar

    clock = Clock()
    app.conf.beat_schedule = {
        "sunrise": {"task": "proj.sun", "schedule": solar("sunrise", 48.8, 2.3)},
        "job": {"task": "proj.job", "schedule": _every(1, clock)},
        "cleanup": {"task": "celery.backend_cleanup", "schedule": _every(1, clock)},
    }
    scheduler = Scheduler(app)
    clock.now += 1
    while scheduler.tick() == 0:
        pass
    assert [n for n, *_ in sent] == ["proj.job"]
    assert "solar schedules are not supported" in caplog.text


def test_a_beat_taking_over_from_the_workers_starts_from_their_last_run(app, sent) -> None:
    clock = Clock(datetime.now(timezone.utc).timestamp())
    app.conf.beat_schedule = {"job": {"task": "proj.job", "schedule": _every(30, clock)}}
    app.register_beat_schedule()
    app._native.get(worker_beat.BEAT_PREFIX + "job").func()  # a worker sends it now
    assert len(sent) == 1
    scheduler = Scheduler(app)
    scheduler.schedule["job"].last_run_at = clock.dt() - timedelta(hours=1)
    catch_up(app, scheduler)
    assert scheduler.tick() > 25  # not due before a period after the workers' send
    assert len(sent) == 1
