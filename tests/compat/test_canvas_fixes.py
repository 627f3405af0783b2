"""Canvas fixes: a chord's body is never lost; a chain's ``link`` fires once; unsupported
canvas primitives refuse loudly.

Eager tests run twice (``impl`` is ``celery`` or ``spinach_compat``) with the same expected
outcome; worker tests run the facade on real worker threads (memory://, and Redis).
"""

from __future__ import annotations

from unittest import mock

import pytest

from spinach_compat import canvas, chain, chord
from spinach_compat.app import chords
from spinach_compat.exceptions import ChordError, UnsupportedFeature

from .conftest import WAIT
from .test_canvas import _math


def _canvas(impl):
    if impl.name == "celery":
        import celery

        return celery.group, celery.chain, celery.chord
    return canvas.group, chain, chord


def _tasks(app, seen: list):
    add, total, fail, _ = _math(app)

    @app.task
    def cb(*args):
        seen.append(("cb", *args))

    @app.task
    def eb(task_id):
        seen.append(("eb", task_id))

    return add, total, fail, cb, eb


# -- a chain's link fires once, on its last task (eager, against real Celery) -----------------


def test_chain_link_fires_once_eager(eager_app, impl):
    _, chain_, _ = _canvas(impl)
    seen: list = []
    add, _, _, cb, _ = _tasks(eager_app, seen)
    assert (add.s(1, 1) | add.s(2)).apply_async(link=cb.s()).get() == 4
    chain_(add.s(1, 1), add.s(3), link=cb.s("own")).apply_async()
    (add.s(1, 1) | add.s(4)).set(link=cb.s("set")).apply_async()
    linked = add.s(1, 1) | add.s(5)
    linked.link(cb.s("linked"))
    linked.delay()
    (add.s(1, 1) | add.s(6)).apply(link=cb.s("apply"))
    chain_(add.s(1, 1)).apply_async(link=cb.s("single"))
    assert seen == [
        ("cb", 4), ("cb", 5, "own"), ("cb", 6, "set"), ("cb", 7, "linked"),
        ("cb", 8, "apply"), ("cb", 2, "single"),
    ]  # fmt: skip


def test_chain_link_on_a_last_group_or_chord_eager(eager_app, impl):
    group_, chain_, chord_ = _canvas(impl)
    seen: list = []
    add, total, _, cb, _ = _tasks(eager_app, seen)
    to_chord = chain_(add.s(1, 1), group_(add.s(1), add.s(2)), total.s())
    assert to_chord.apply_async(link=cb.s("a")).get() == 7
    a_chord = chord_([add.s(1), add.s(2)], total.s())
    assert chain_(add.s(1, 1), a_chord).apply_async(link=cb.s("b")).get() == 7
    assert chain_(add.s(1, 1), group_(add.s(1), add.s(2))).apply_async(link=cb.s("c"))
    assert seen == [("cb", 7, "a"), ("cb", 7, "b"), ("cb", 3, "c"), ("cb", 4, "c")]


def test_chord_link_is_its_body_s_eager(eager_app, impl):
    _, _, chord_ = _canvas(impl)
    seen: list = []
    add, total, _, cb, _ = _tasks(eager_app, seen)
    header = [add.s(1, 1), add.s(2, 2)]
    assert chord_(header, total.s()).apply_async(link=cb.s("a")).get() == 6
    assert chord_(header, total.s(), link=cb.s("b")).apply_async().get() == 6
    assert chord_(header)(total.s(), link=cb.s("c")).get() == 6
    assert seen == [("cb", 6, "a"), ("cb", 6, "b"), ("cb", 6, "c")]


def test_chain_link_error_per_task_eager(eager_app, impl):
    _, chain_, _ = _canvas(impl)
    seen: list = []
    add, _, fail, _, eb = _tasks(eager_app, seen)
    with pytest.raises(ValueError):
        (add.s(1, 1) | fail.s() | add.s(2)).apply_async(link_error=eb.s())
    with pytest.raises(ValueError):
        chain_(fail.s(1), add.s(2), link_error=eb.s()).apply_async()
    assert [event[0] for event in seen] == ["eb", "eb"]


# -- a chain's link on workers -----------------------------------------------------------------


def test_chain_link_fires_once_on_workers(app, run_worker, recorder):
    add, _, fail, _, _ = _tasks(app, [])

    @app.task
    def record(*args):
        recorder.add("cb", *args)

    @app.task
    def record_id(task_id):
        recorder.add("eb", task_id)

    run_worker(concurrency=1)  # one at a time: a link of the first step would come first
    result = (add.s(1, 1) | add.s(2)).apply_async(link=record.s())
    chain(add.s(1, 1), add.s(3), link=record.s("own")).apply_async()
    failed = chain(add.s(1, 1), fail.s(), add.s(2), link_error=record_id.s()).apply_async()
    recorder.wait_for(lambda events: len(events) == 3)
    assert result.get(timeout=WAIT) == 4
    assert sorted(recorder.events) == [("cb", 4), ("cb", 5, "own"), ("eb", failed.parent.id)]


# -- a chord's body is never lost ------------------------------------------------------------


def test_chord_refuses_an_unsupported_body_option_when_sent(app):
    add, total, _, _, _ = _tasks(app, [])
    with mock.patch.object(app.engine, "schedule_jobs") as spy:
        with pytest.raises(UnsupportedFeature, match="compression"):
            chord([add.s(1, 1), add.s(2, 2)])(total.s().set(compression="not-installed"))
        with pytest.raises(UnsupportedFeature, match="compression"):
            chord(
                [add.s(1, 1)], add.s(1) | total.s().set(compression="not-installed")
            ).apply_async()
    assert spy.call_count == 0  # nothing sent: not even the header


def test_chain_refuses_an_unsupported_step_option_when_sent(app):
    add, _, _, _, _ = _tasks(app, [])
    with (
        mock.patch.object(app.engine, "schedule_jobs") as spy,
        pytest.raises(UnsupportedFeature, match="compression"),
    ):
        chain(add.s(1, 1), add.s(2).set(compression="not-installed")).apply_async()
    assert spy.call_count == 0  # not the first step either


def test_chord_refuses_an_unsupported_body_option_eagerly(make_app):
    app = make_app(task_always_eager=True)
    add, total, _, _, _ = _tasks(app, [])
    with pytest.raises(UnsupportedFeature, match="compression"):
        chord([add.s(1, 1)])(total.s().set(compression="not-installed"))


def _body_send_fails(app, recorder, patch):
    """A chord whose body cannot be sent: the body FAILS with a ChordError, errbacks called."""
    add, total, _, _, _ = _tasks(app, [])

    @app.task
    def on_error(request, exc, traceback):
        recorder.add("errback", request.id, repr(exc))

    app.start_worker(concurrency=2, block=False)
    with patch(total):
        result = chord([add.s(1, 1), add.s(2, 2)], total.s().on_error(on_error.s()))()
        with pytest.raises(ChordError) as raised:
            result.get(timeout=WAIT)
    assert result.state == "FAILURE"
    recorder.wait_for(lambda events: len(events) == 1)
    assert recorder.events == [("errback", result.id, repr(raised.value))]
    return str(raised.value)


def test_chord_body_send_error_fails_the_body(app, recorder):
    def patch(total):
        return mock.patch.object(total, "apply_async", side_effect=ConnectionError("down"))

    message = _body_send_fails(app, recorder, patch)
    assert message == "Callback error: ConnectionError('down')"  # Celery's words


def test_chord_join_error_fails_the_body_on_redis(make_app, redis_url, recorder):
    app = make_app(broker=redis_url, backend=redis_url)

    def patch(_):
        return mock.patch.object(chords, "_gather", side_effect=ConnectionError("lost"))

    message = _body_send_fails(app, recorder, patch)
    assert message == "Join error: ConnectionError('lost')"  # Celery's words
    assert not app.backend.broker.redis.keys("*chord*")  # the counter is gone


def test_chord_with_a_chain_body_fails_its_last_task(app, run_worker):
    add, total, fail, _, _ = _tasks(app, [])
    run_worker()
    result = chord([add.s(1, 1), fail.s(2)], add.s(1) | total.s()).apply_async()
    with pytest.raises(ChordError):
        result.get(timeout=WAIT, follow_parents=False)
