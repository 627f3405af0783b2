"""Canvas: ``group``, ``chain`` (``|``) and ``chord``.

Eager tests run twice (``impl`` is ``celery`` or ``spinach_compat``) with the same expected
outcome; worker tests run the facade on real worker threads (memory://, and Redis for
chords).
"""

from __future__ import annotations

from unittest import mock

import pytest

from spinach_compat import chain, chord, group
from spinach_compat.exceptions import ChordError
from spinach_compat.result import AsyncResult, GroupResult

from .conftest import WAIT


def _canvas(impl):
    if impl.name == "celery":
        import celery

        return celery.group, celery.chain, celery.chord
    return group, chain, chord


def _math(app):
    @app.task
    def add(a, b):
        return a + b

    @app.task
    def total(values):
        return sum(values)

    @app.task
    def fail(x):
        raise ValueError(x)

    @app.task
    def collect(*args):
        return list(args)

    return add, total, fail, collect


# -- eager, against real Celery --------------------------------------------------------------


def test_group_eager(eager_app, impl):
    group_, _, _ = _canvas(impl)
    add, _, fail, _ = _math(eager_app)
    result = group_(add.s(1, 2), add.s(3, 4)).apply_async()
    assert type(result).__name__ == "GroupResult"
    assert result.get() == [3, 7]
    assert (result.ready(), result.successful(), result.failed()) == (True, True, False)
    assert (result.completed_count(), result.waiting()) == (2, False)
    assert group_([add.s(i, i) for i in range(3)]).delay().get() == [0, 2, 4]
    assert group_(add.s(i, i) for i in range(3))().get() == [0, 2, 4]
    assert group_(add.s(2), add.s(3)).apply_async((10,)).get() == [12, 13]
    failed = group_(add.s(1, 2), fail.s(3)).apply()
    assert (failed.successful(), failed.failed(), failed.completed_count()) == (False, True, 1)
    with pytest.raises(ValueError):
        failed.get()
    assert [repr(v) for v in failed.get(propagate=False)] == ["3", "ValueError(3)"]


def test_chain_eager(eager_app, impl):
    _, chain_, _ = _canvas(impl)
    add, _, fail, _ = _math(eager_app)
    result = chain_(add.s(1, 2), add.s(3), add.si(10, 10)).apply_async()
    assert result.get() == 20
    assert (result.parent.get(), result.parent.parent.get()) == (6, 3)
    assert result.parent.parent.parent is None
    assert (add.s(1, 2) | add.s(3) | add.s(4)).delay().get() == 10
    assert chain_(add.s(5), add.s(1)).apply_async((2,)).get() == 8
    with pytest.raises(ValueError):
        chain_(add.s(1, 2), fail.s(), add.s(1)).apply_async()


def test_chord_eager(eager_app, impl):
    group_, _, chord_ = _canvas(impl)
    add, total, fail, collect = _math(eager_app)
    assert chord_([add.s(i, i) for i in range(4)])(total.s()).get() == 12
    assert chord_([add.s(i, i) for i in range(4)], total.s()).apply_async().get() == 12
    assert (group_(add.s(1, 1), add.s(2, 2)) | collect.s("x")).apply_async().get() == [
        [2, 4],
        "x",
    ]
    assert chord_([], total.s()).apply_async().get() == 0
    with pytest.raises(ValueError):
        chord_([add.s(1, 1), fail.s(2)], total.s()).apply_async()


# -- on workers ------------------------------------------------------------------------------


def test_group_sends_every_member_in_one_round_trip(app, run_worker):
    add, _, fail, _ = _math(app)
    with mock.patch.object(app.engine, "schedule_jobs", wraps=app.engine.schedule_jobs) as spy:
        result = group(add.s(i, i) for i in range(5)).apply_async()
    assert spy.call_count == 1 and len(spy.call_args.args[0]) == 5
    assert isinstance(result, GroupResult)
    assert [r.id for r in result.results] == [job.id for job in spy.call_args.args[0]]
    run_worker()
    assert result.get(timeout=WAIT) == [0, 2, 4, 6, 8]
    assert (result.ready(), result.successful(), result.completed_count()) == (True, True, 5)
    failed = group(add.s(1, 1), fail.s(7)).delay()
    with pytest.raises(ValueError):
        failed.join(timeout=WAIT)
    assert failed.failed() and not failed.successful() and failed.completed_count() == 1


def test_group_is_all_or_none(app):
    add, _, _, _ = _math(app)
    app.conf.task_publish_retry = False
    down = ConnectionError("down")
    patch = mock.patch.object(app.engine, "schedule_jobs", side_effect=down)
    with patch as spy, pytest.raises(ConnectionError):
        group(add.s(1, 1), add.s(2, 2)).apply_async()
    assert [len(call.args[0]) for call in spy.call_args_list] == [2]  # once, both jobs


def test_chain_passes_each_result_on(app, run_worker):
    add, _, _, collect = _math(app)
    run_worker()
    result = (add.s(1, 2) | add.s(3) | add.si(10, 10) | collect.s("end")).apply_async()
    assert isinstance(result, AsyncResult)
    assert result.get(timeout=WAIT) == [20, "end"]
    assert result.parent.get(timeout=WAIT) == 20
    assert result.parent.parent.parent.get(timeout=WAIT) == 3
    assert chain(add.s(5), add.s(1)).apply_async((2,)).get(timeout=WAIT) == 8


def test_chain_stops_at_a_failure(app, run_worker, recorder):
    add, _, fail, _ = _math(app)

    @app.task
    def on_error(task_id):
        recorder.add("errback", task_id)

    run_worker()
    result = chain(add.s(1, 2), fail.s(), add.s(1)).apply_async(link_error=on_error.s())
    recorder.wait_for(lambda events: len(events) == 1)
    assert recorder.events == [("errback", result.parent.id)]
    assert result.parent.state == "FAILURE" and result.state == "PENDING"


def test_chord_on_memory(app, run_worker):
    add, total, _, collect = _math(app)
    run_worker()
    result = chord(add.s(i, i) for i in range(6))(total.s())
    assert result.get(timeout=WAIT) == 30
    assert result.parent.get(timeout=WAIT) == [0, 2, 4, 6, 8, 10]
    in_chain = (add.s(1, 1) | group(add.s(1), add.s(2)) | collect.s()).apply_async()
    assert in_chain.get(timeout=WAIT) == [[3, 4]]


def test_chord_with_a_failed_header(app, run_worker, recorder):
    add, total, fail, _ = _math(app)

    @app.task
    def on_error(request, exc, traceback):
        recorder.add("errback", request.id, type(exc).__name__)

    run_worker()
    result = chord([add.s(1, 1), fail.s(2)], total.s().on_error(on_error.s())).apply_async()
    with pytest.raises(ChordError):
        result.get(timeout=WAIT, follow_parents=False)
    with pytest.raises(ValueError):  # as Celery: following the parents, the header's error
        result.get(timeout=WAIT)
    recorder.wait_for(lambda events: len(events) == 1)
    assert recorder.events == [("errback", result.id, "ChordError")]


def test_chord_on_redis(make_app, redis_url):
    app = make_app(broker=redis_url, backend=redis_url)
    add, total, _, _ = _math(app)
    app.start_worker(concurrency=2, block=False)
    result = chord([add.s(i, 1) for i in range(8)], total.s()).apply_async()
    assert result.get(timeout=WAIT) == sum(range(8)) + 8
    assert not app.backend.broker.redis.keys("*chord*")  # the counter is gone


def test_chord_requires_a_result_backend(make_app):
    app = make_app(backend=None)
    add, total, _, _ = _math(app)
    with pytest.raises(NotImplementedError):
        chord([add.s(1, 1)], total.s()).apply_async()


def test_an_app_given_to_signature_is_kept_by_a_task_and_overridden_by_an_app(impl, eager_app):
    """``task.signature(..., app=other)`` keeps ``other``; ``app.signature`` binds its app."""
    other = impl.Celery("other", broker="memory://", set_as_current=False)
    try:

        @eager_app.task
        def add(a, b):
            return a + b

        assert add.signature((1, 2), app=other).app is other
        assert add.signature((1, 2)).app is eager_app
        assert eager_app.signature(add.name, (1,), app=other).app is eager_app
    finally:
        other.close()
