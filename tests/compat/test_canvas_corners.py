"""The canvas corners in eager mode, through real Celery and through the facade.

Every test runs twice (``impl`` is ``celery`` or ``spinach_compat``) with the same expected
outcome: ``chunks``, ``xmap``/``xstarmap`` (``task.map``/``starmap``, ``~sig``),
``group.skew`` and ``Task.replace``. Their runs on real workers are in
``test_canvas_corners_worker.py``.
"""

from __future__ import annotations

import importlib

import pytest


def _canvas(impl):
    return importlib.import_module(f"{impl.name}.canvas")


def _tasks(app, impl):
    canvas = _canvas(impl)

    @app.task(shared=False)  # each test's own: Celery shares tasks across apps
    def add(a, b):
        return a + b

    @app.task(shared=False)
    def double(x):
        return 2 * x

    replacements = {
        "sig": lambda: add.s(1, 2),
        "group": lambda: canvas.group(add.s(1, 1), add.s(2, 2)),
        "chain": lambda: add.s(1, 1) | add.s(10),
        "empty": lambda: canvas.chain(),
        "in-a-chord": lambda: add.s(1, 1).set(chord="x"),
    }

    @app.task(bind=True, shared=False)
    def replaced(self, kind):
        return self.replace(replacements[kind]())

    return add, double, replaced


def test_map_starmap_and_invert(eager_app, impl):
    _, double, _ = _tasks(eager_app, impl)
    add = eager_app.tasks[f"{__name__}.add"]
    mapped = double.map([1, 2, 3])
    assert type(mapped).__name__ == "xmap"
    assert repr(mapped) == f"[{__name__}.double(x) for x in [1, 2, 3]]"
    assert (dict(mapped)["task"], dict(mapped)["kwargs"]["it"]) == ("celery.map", [1, 2, 3])
    assert ~mapped == [2, 4, 6]
    assert ~add.starmap([(1, 2), (3, 4)]) == [3, 7]
    assert repr(add.starmap([(1, 2)])) == f"[{__name__}.add(*x) for x in [(1, 2)]]"
    assert add.starmap([(1, 2)]).apply().get() == [3]
    assert double.map([1]).delay().get() == [2]
    assert ~add.s(2, 2) == 4


def test_chunks(eager_app, impl):
    canvas = _canvas(impl)
    add, _, _ = _tasks(eager_app, impl)
    chunks = add.chunks(zip(range(5), range(5), strict=True), 2)
    assert (type(chunks).__name__, dict(chunks)["task"]) == ("chunks", "celery.chunks")
    result = chunks.apply_async()
    assert type(result).__name__ == "GroupResult"
    assert result.get() == [[0, 2], [4, 6], [8]]
    assert ~add.chunks([(1, 1), (2, 2)], 1) == [[2], [4]]
    assert canvas.chunks(add.s(), [(1, 2)], 1, app=eager_app).delay().get() == [[3]]
    group = chunks.group()
    assert [type(task).__name__ for task in group.tasks] == ["xstarmap"] * 3
    assert {"celery.map", "celery.starmap", "celery.chunks"} <= set(eager_app.tasks)


@pytest.mark.parametrize(
    ("start", "stop", "step", "countdowns"),
    [
        (1, None, 1, [1.0, 2.0, 3.0, 4.0]),
        (1, 2, 0.5, [1.0, 1.5, 2.0, 2.0]),
        (0, 3, 2, [0.0, 2.0, 2.0, 2.0]),
    ],
)
def test_group_skew(eager_app, impl, start, stop, step, countdowns):
    add, _, _ = _tasks(eager_app, impl)
    group = _canvas(impl).group(add.s(i, i) for i in range(4))
    assert group.skew(start=start, stop=stop, step=step) is group
    assert [task.options["countdown"] for task in group.tasks] == countdowns


@pytest.mark.parametrize(("kind", "value"), [("sig", 3), ("group", [2, 4]), ("chain", 12)])
def test_replace_runs_the_replacement_here(eager_app, impl, kind, value):
    add, _, replaced = _tasks(eager_app, impl)
    result = replaced.apply((kind,))
    assert (result.get(), result.state) == (value, "SUCCESS")
    chained = (replaced.si(kind) | add.s(5)) if kind != "group" else None
    if chained is not None:
        assert chained.apply().get() == value + 5


def test_replace_refuses_what_celery_refuses(eager_app, impl):
    _, _, replaced = _tasks(eager_app, impl)
    for kind, text in [
        ("empty", "Cannot replace with an empty chain"),
        ("in-a-chord", "A signature replacing a task must not be part of a chord"),
    ]:
        result = replaced.apply((kind,))
        assert type(result.result).__name__ == "ImproperlyConfigured"
        assert str(result.result) == text


def test_replace_under_delay_cannot_join_as_celery(eager_app, impl):
    """Celery's eager replace joins the replacement: under ``delay`` (joins denied) the task
    fails with the error a join inside a task raises."""
    _, _, replaced = _tasks(eager_app, impl)
    result = replaced.delay("sig")
    assert (result.state, type(result.result).__name__) == ("FAILURE", "RuntimeError")
    assert str(result.result).startswith("Never call result.get() within a task!")


def test_signature_clone_replace_set_link_freeze(eager_app, impl):
    canvas = _canvas(impl)
    add, double, _ = _tasks(eager_app, impl)
    linked = add.s(1).set(link=[double.s()])
    clone = linked.clone((2,), {"b": 3}, countdown=1)
    assert (clone.args, clone.kwargs, clone.options["countdown"]) == ((2, 1), {"b": 3}, 1)
    clone.options["link"].append(double.s())
    assert len(linked.options["link"]) == 1  # a clone's links are its own
    replaced = add.s(1).replace(args=(7,), kwargs={"b": 1}, options={"queue": "q"})
    assert (replaced.args, replaced.kwargs, replaced.options) == ((7,), {"b": 1}, {"queue": "q"})
    errback = add.s(1)
    assert errback.on_error(double.s()) is errback and len(errback.options["link_error"]) == 1
    frozen = add.s(1, 2)
    result = frozen.freeze()
    assert (type(result).__name__, frozen.id, frozen.freeze("other").id) == (
        "AsyncResult", result.id, result.id,
    )  # fmt: skip
    assert (frozen.apply().get(), add.s(1).apply((2,)).get()) == (3, 3)
    group = canvas.group(add.s(1, 1), add.s(2, 2)).clone((5,), priority=3)
    assert (type(group).__name__, group.options["priority"]) == ("group", 3)
    assert group.apply().get() == [2, 4]  # as Celery: a canvas clone's args reach no task
    chain = (add.s(1, 1) | double.s()).clone((5,))
    assert (type(chain).__name__.lstrip("_"), chain.apply().get()) == ("chain", 4)


def test_eager_results_have_no_children_and_join_in_place(eager_app, impl):
    add, _, _ = _tasks(eager_app, impl)
    result = _canvas(impl).group(add.s(1, 1), add.s(2, 2)).apply_async()
    assert (result.supports_native_join, result.join()) == (False, [2, 4])
    assert add.delay(1, 1).children is None
