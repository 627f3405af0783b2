"""Priorities (kombu's Redis bands as native queues) and rate limits (per worker process)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from spinach_compat.app import priority, ratelimit


@pytest.mark.parametrize("value", [None, -1, 0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 255])
def test_band_is_kombus_redis_list(value):
    redis_transport = pytest.importorskip("kombu.transport.redis")
    channel = SimpleNamespace(priority_steps=[0, 3, 6, 9], sep="\x06\x16")
    channel.priority = lambda n: redis_transport.Channel.priority(channel, n)
    clamped = max(min(int(value or 0), 9), 0)  # kombu's _get_message_priority
    expected = redis_transport.Channel._q_for_pri(channel, "emails", clamped)
    assert priority.band_queue("emails", value) == expected


def test_bands_in_consuming_order():
    assert priority.band_queues(["a", "b", "a\x06\x163"], (0, 5)) == [
        "a", "b", "a\x06\x163", "a\x06\x165", "b\x06\x165",
    ]  # fmt: skip
    assert priority.base_queue("a\x06\x169") == "a"


@pytest.mark.parametrize(
    ("limit", "rate"),
    [("10/s", 10.0), ("120/m", 2.0), ("3600/h", 1.0), (5, 5.0), ("4", 4.0), (None, 0.0)],
)
def test_parse_rate(limit, rate):
    assert ratelimit.parse_rate(limit) == rate


def test_limiter_spaces_a_burst_in_slots():
    now = [100.0]
    limiter = ratelimit.RateLimiter(4.0, clock=lambda: now[0])  # one start per 0.25 s
    assert limiter.acquire() is None
    assert [limiter.acquire() for _ in range(3)] == [100.25, 100.5, 100.75]
    now[0] = 102.0  # idle long enough: the next one starts at once, not in a burst
    assert (limiter.acquire(), limiter.acquire()) == (None, 102.25)


def test_limits_by_task_name_follow_changes():
    limits = ratelimit.RateLimits(clock=lambda: 0.0)
    first = limits.limiter("t", "1/s")
    assert limits.limiter("t", "1/s") is first
    assert limits.limiter("t", "2/s") is not first
    assert limits.limiter("t", None) is None and limits.limiter("u", "0") is None


def test_priority_settings_and_bad_rate_limit(make_app):
    app = make_app(task_default_priority=3, task_default_rate_limit="5/m")

    @app.task
    def plain():
        pass

    assert (plain.priority, plain.rate_limit) == (3, "5/m")
    _ = app.engine  # accepted settings
    with pytest.raises(ValueError, match="rate limit"):

        @app.task(rate_limit="5/week")
        def weekly():
            pass


def test_higher_priority_runs_first(app, recorder):
    @app.task(queue="emails")
    def job(name):
        recorder.add(name)

    for name, value in [("low", 9), ("mid", 4), ("high", 0), ("plain", None), ("seven", 7)]:
        job.apply_async((name,), priority=value)
    assert app.all_queues(bands=True)[:2] == ["celery", "emails"]
    app.start_worker(concurrency=1, queues=["emails"], block=False)  # as -Q emails
    recorder.wait_for(lambda events: len(events) == 5)
    assert [e[0] for e in recorder.events] == ["high", "plain", "mid", "seven", "low"]


def test_purge_and_inspect_see_the_bands(app):
    @app.task(priority=8)
    def job():
        pass

    job.delay()
    job.apply_async(priority=1)
    job.apply_async(priority=5, countdown=600)
    assert app.control.purge() == 2


def test_rate_limit_defers_without_blocking(app, run_worker, recorder, monkeypatch):
    deferred = []
    acquire = ratelimit.RateLimiter.acquire

    def counting(self):
        slot = acquire(self)
        if slot is not None:
            deferred.append(slot)
        return slot

    monkeypatch.setattr(ratelimit.RateLimiter, "acquire", counting)

    @app.task(rate_limit="1/s")  # slots a second apart: room for a loaded machine
    def limited(n):
        recorder.add(f"limited{n}", time.time())

    @app.task
    def free():
        recorder.add("free", time.time())

    for n in range(3):
        limited.delay(n)
    free.delay()
    run_worker(concurrency=1)
    recorder.wait_for(lambda events: len(events) == 4)
    names = [e[0] for e in recorder.events]
    assert names == ["limited0", "free", "limited1", "limited2"]  # free is not held back
    assert len(deferred) == 2  # each over the limit deferred once, to its reserved slot
    starts = {e[0]: e[1] for e in recorder.events}
    assert starts["limited2"] - starts["limited0"] >= 1.8  # two slots of 1 s (lower bound)
    assert datetime.fromtimestamp(deferred[-1], timezone.utc) <= datetime.now(timezone.utc)


def test_links_through_the_queue(app, run_worker, recorder):
    @app.task
    def add(a, b):
        return a + b

    @app.task
    def fail():
        raise ValueError("boom")

    @app.task
    def record(*args):
        recorder.add("record", *args)

    @app.task
    def by_id(task_id):
        recorder.add("by_id", task_id)

    @app.task
    def with_request(request, exc, traceback):
        recorder.add("errback", request.id, repr(exc), request.is_eager)

    moment = datetime(2024, 1, 2, tzinfo=timezone.utc)
    add.apply_async((1, 2), link=[record.s(moment), record.si("immutable")])
    fail.apply_async(task_id="f1", link_error=[by_id.s(), with_request.s()], link=record.s())
    run_worker(concurrency=2)
    recorder.wait_for(lambda events: len(events) == 4)
    assert sorted(recorder.events, key=repr) == sorted(
        [
            ("record", 3, moment), ("record", "immutable"), ("by_id", "f1"),
            ("errback", "f1", "ValueError('boom')", False),
        ],
        key=repr,
    )  # fmt: skip
