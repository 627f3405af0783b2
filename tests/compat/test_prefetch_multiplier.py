"""Celery's ``worker_prefetch_multiplier`` on a facade worker: the jobs a worker holds
beyond its threads while its tasks are short, listed by ``inspect().reserved()`` and
``query_task``, never by ``active()``; a multiplier of 1 holds none; 0 is refused."""

from __future__ import annotations

import threading

import pytest

from spinach_compat.exceptions import UnsupportedFeature
from spinach_compat.worker.prefetch import prefetch_settings

from ..helpers import wait_until
from .conftest import WAIT


@pytest.mark.parametrize(
    ("multiplier", "pool", "limit"),
    [(4, "threads", 6), (1, "threads", 0), (2, "solo", 2), (4, "prefork", 0)],
)
def test_the_multiplier_sets_the_jobs_held_beyond_the_threads(multiplier, pool, limit):
    conf = {"worker_prefetch_multiplier": multiplier}
    assert prefetch_settings(conf, 2, pool).limit == limit


def test_what_counts_as_short_is_a_setting_of_seconds():
    conf = {"worker_prefetch_multiplier": 4}
    assert prefetch_settings(conf, 2, "threads").short_job == 0.005  # the engine's default
    conf["spinach_prefetch_short_job"] = 0.25
    assert prefetch_settings(conf, 2, "threads").short_job == 0.25
    for bad in (0, -1, "1", True):
        conf["spinach_prefetch_short_job"] = bad
        with pytest.raises(ValueError, match="spinach_prefetch_short_job must be seconds"):
            prefetch_settings(conf, 2, "threads")


def test_no_limit_is_refused_and_a_bad_value_too():
    with pytest.raises(UnsupportedFeature, match="worker_prefetch_multiplier = 0"):
        prefetch_settings({"worker_prefetch_multiplier": 0}, 2, "threads")
    with pytest.raises(ValueError, match="worker_prefetch_multiplier must be an int"):
        prefetch_settings({"worker_prefetch_multiplier": "4"}, 2, "threads")


def _held_node(make_app, multiplier: int):
    """A node of one thread: short tasks first (prefetch on), then one that blocks and two
    more behind it; returns the app, the blocked and the queued results, and the gate."""
    # a minute counts as short: the quick tasks turn the prefetch on however loaded the
    # machine is (the default, 5 ms, is a matter of the machine's speed)
    app = make_app(worker_prefetch_multiplier=multiplier, spinach_prefetch_short_job=60)
    gate, started = threading.Event(), threading.Event()

    @app.task(name="quick")
    def quick():
        return 1

    @app.task(name="gated")
    def gated(n):
        started.set()
        gate.wait(WAIT)
        return n

    app.start_worker(concurrency=1, block=False, nodename="n1@host")
    assert all(r.get(timeout=WAIT) == 1 for r in [quick.delay() for _ in range(5)])
    running = gated.delay(0)
    assert started.wait(WAIT)
    return app, running, [gated.delay(1), gated.delay(2)], gate


def test_held_jobs_are_reserved_not_active(make_app):
    app, running, behind, gate = _held_node(make_app, multiplier=3)  # 2 held for 1 thread
    try:
        inspect = app.control.inspect()
        assert wait_until(lambda: len(inspect.reserved()["n1@host"]) == 2, WAIT)
        reserved = inspect.reserved()["n1@host"]
        assert {r["id"] for r in reserved} == {r.id for r in behind}
        assert {(r["acknowledged"], r["worker_pid"]) for r in reserved} == {(False, None)}
        assert [a["id"] for a in inspect.active()["n1@host"]] == [running.id]
        states = inspect.query_task(running.id, behind[0].id)["n1@host"]
        assert (states[running.id][0], states[behind[0].id][0]) == ("active", "reserved")
    finally:
        gate.set()
    assert [r.get(timeout=WAIT) for r in behind] == [1, 2]


def test_a_multiplier_of_one_holds_nothing(make_app):
    app, running, behind, gate = _held_node(make_app, multiplier=1)
    try:
        inspect = app.control.inspect()
        assert inspect.reserved() == {"n1@host": []}
        assert [a["id"] for a in inspect.active()["n1@host"]] == [running.id]
        assert app.engine.broker.queue_lengths() == {"celery": 2}
    finally:
        gate.set()
    assert [r.get(timeout=WAIT) for r in behind] == [1, 2]
