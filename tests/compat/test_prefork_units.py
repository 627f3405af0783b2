"""The pieces of the prefork pool, without processes: autoscaling decisions, limits, parsing."""

from __future__ import annotations

import pytest

from spinach.supervisor import Child
from spinach_compat.worker.autoscale import Autoscaler, Bounds, parse_autoscale, scale_by
from spinach_compat.worker.prefork import ChildLimiter, Limits

BOUNDS = Bounds(maximum=4, minimum=1)


@pytest.mark.parametrize(
    ("children", "busy", "waiting", "idle_for", "expected"),
    [
        (0, 0, 0, 0.0, 1),  # below MIN: grow to it
        (1, 1, 5, 0.0, 3),  # all busy, work waiting: grow, up to MAX
        (2, 2, 1, 0.0, 1),  # one child per waiting job
        (4, 4, 9, 0.0, 0),  # at MAX
        (3, 2, 5, 0.0, 0),  # a child is free: it takes the next job
        (4, 1, 0, 0.5, 0),  # idle, but not for keepalive yet
        (4, 1, 0, 1.0, -3),  # idle for keepalive: down to MIN...
        (4, 2, 0, 1.0, -2),  # ...never stopping a busy child
        (6, 0, 0, 0.0, -2),  # above MAX
    ],
)
def test_scale_by(children, busy, waiting, idle_for, expected):
    assert scale_by(children, busy, waiting, idle_for, BOUNDS, keepalive=1.0) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("4,1", Bounds(4, 1)), ("1,4", Bounds(4, 1)), ("10", Bounds(10, 0))]
)
def test_parse_autoscale_as_celery(text, expected):
    assert parse_autoscale(text) == expected


@pytest.mark.parametrize("text", ["", "4,x", "1,2,3", "0", "4,-1", ","])
def test_parse_autoscale_refuses(text):
    with pytest.raises(ValueError, match="MAX"):
        parse_autoscale(text)


class FakeSupervisor:
    """What the autoscaler reads and calls on the supervisor."""

    def __init__(self, busy: list[bool]):
        self.children = [Child(n + 1, busy=b) for n, b in enumerate(busy)]
        self.grown = self.shrunk = 0

    def active(self) -> list[Child]:
        return self.children

    def grow(self, count: int) -> None:
        self.grown += count

    def shrink(self, count: int) -> int:
        self.shrunk += count
        return count


def test_autoscaler_grows_then_shrinks_after_keepalive():
    now = [100.0]
    waiting = [3]
    scaler = Autoscaler(BOUNDS, lambda: waiting[0], keepalive=10.0, clock=lambda: now[0])
    busy = FakeSupervisor([True])

    assert scaler(busy) == 1.0  # next look: in INTERVAL
    assert busy.grown == 3

    idle = FakeSupervisor([False] * 4)
    waiting[0] = 0
    now[0] += 9.0
    scaler(idle)
    assert idle.shrunk == 0  # idle for 9 s only
    now[0] += 1.0
    scaler(idle)
    assert idle.shrunk == 3


def test_autoscaler_keeps_the_children_when_the_broker_cannot_tell():
    def broken() -> int:
        raise ConnectionError("down")

    scaler = Autoscaler(BOUNDS, broken, keepalive=10.0, clock=lambda: 0.0)
    supervisor = FakeSupervisor([True, True])
    scaler(supervisor)
    assert supervisor.grown == supervisor.shrunk == 0


def test_limiter_stops_after_the_task_reaching_max_tasks():
    stops = []
    limiter = ChildLimiter(Limits(max_tasks=2), lambda: stops.append(1))

    limiter.job_finished()
    assert stops == [] and limiter.reached is None
    limiter.job_finished()
    assert stops == [1] and "ran 2 tasks" in limiter.reached
    limiter.job_finished()  # said once
    assert stops == [1]


def test_limiter_measures_memory_after_each_task():
    used = [1000]
    stops = []
    limiter = ChildLimiter(Limits(max_memory_kib=2000), lambda: stops.append(1), lambda: used[0])

    limiter.job_finished()
    used[0] = 2001
    limiter.job_finished()

    assert stops == [1] and "uses 2001 KiB" in limiter.reached


def test_limits_come_from_the_flags_else_the_settings():
    import spinach_compat

    app = spinach_compat.Celery("limits", broker="memory://", set_as_current=False)
    app.conf.update(worker_max_tasks_per_child=5, worker_max_memory_per_child=0)

    assert Limits.of(app, None, None) == Limits(max_tasks=5, max_memory_kib=None)
    assert Limits.of(app, 7, 1000) == Limits(max_tasks=7, max_memory_kib=1000)
    assert Limits.of(app, 0, None) == Limits(max_tasks=None, max_memory_kib=None)


@pytest.mark.parametrize(
    ("flag", "setting", "expected"),
    [
        (None, None, "prefork"),  # Celery's default
        (None, "threads", "threads"),  # worker_pool honoured as the flag
        ("solo", "threads", "solo"),  # the flag first
        ("processes", None, "prefork"),  # Celery's other name of prefork
    ],
)
def test_worker_pool_as_celery_chooses_it(flag, setting, expected):
    from spinach_compat.bin.celery import worker_pool

    assert worker_pool(flag, setting) == expected


@pytest.mark.parametrize(
    ("flag", "setting", "message"),
    [
        (None, "eventlet", "worker_pool='eventlet': eventlet is deprecated"),
        ("tornado", None, "unknown pool 'tornado'"),
        (None, object, "custom pool classes are not supported"),
    ],
)
def test_worker_pool_refusals_name_the_way_out(flag, setting, message):
    from spinach_compat.bin.celery import UsageError, worker_pool

    with pytest.raises(UsageError, match=message) as info:
        worker_pool(flag, setting)
    assert "prefork" in str(info.value)


def test_gevent_asked_for_in_an_unpatched_process_names_the_console_script():
    """``python -m spinach_compat -P gevent`` imported everything before it could patch."""
    from spinach_compat.bin.celery import UsageError, worker_pool

    with pytest.raises(UsageError, match="-P gevent: gevent's monkey patching must come"):
        worker_pool("gevent", None)
    assert worker_pool(None, "gevent") == "gevent"  # the setting: the command runs again


def test_a_memory_broker_runs_threads_by_default_and_refuses_prefork():
    from spinach_compat.bin.celery import UsageError, worker_pool

    assert worker_pool(None, None, "memory://") == "threads"
    assert worker_pool(None, None, "redis://localhost/0") == "prefork"
    with pytest.raises(UsageError, match="memory:// broker lives in one process"):
        worker_pool("prefork", None, "memory://")
