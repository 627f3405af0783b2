"""The canvas corners in eager mode, through real Celery and through the facade.

Every test runs twice (``impl`` is ``celery`` or ``spinach_compat``) with the same expected
outcome: ``chunks``, ``xmap``/``xstarmap`` (``task.map``/``starmap``, ``~sig``),
``group.skew``, ``Task.replace``, groups inside groups and chord headers, ``group | group``
and ``add_to_chord`` outside a chord. Their runs on real workers are in
``test_canvas_corners_worker.py``; ``add_to_chord``'s facade-only corners (an added task
adding more, failing, or being a group) run on the facade's in-process worker here.
"""

from __future__ import annotations

import importlib

import pytest

from spinach_compat import chord
from spinach_compat.exceptions import ChordError, UnsupportedFeature

from .conftest import WAIT


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


def _stamp_options(sig) -> dict:
    """A signature's stamps (its ``stamped_headers`` sorted: Celery's order is a set's)."""
    names = sorted(sig.options.get("stamped_headers", []))
    return {"stamped_headers": names, **{name: sig.options[name] for name in names}}


def _every_hook(canvas):
    class EveryHook(canvas.StampingVisitor):
        def on_signature(self, sig, **headers):
            return {"mid": f"m{sig.args}"}

        def on_group_start(self, group, **headers):
            return {"grp": "g"}

        def on_chain_start(self, chain, **headers):
            return {"chn": "c"}

        def on_callback(self, callback, **headers):
            return {"cb": "yes"}

        def on_errback(self, errback, **headers):
            return {"eb": "yes"}

        def on_chord_body(self, chord, **headers):
            return {"body": "b"}

    return EveryHook()


def test_stamping_a_signature_and_its_links(eager_app, impl):
    canvas = _canvas(impl)
    add, double, _ = _tasks(eager_app, impl)
    sig = add.si(1, 1)
    sig.link(double.si(2))
    sig.link_error(double.si(3))
    sig.stamp(_every_hook(canvas), extra="e")
    assert _stamp_options(sig) == {"stamped_headers": ["extra", "mid"], "extra": "e",
                                   "mid": "m(1, 1)"}  # fmt: skip
    assert _stamp_options(sig.options["link"][0]) == {
        "stamped_headers": ["cb", "extra", "mid"], "cb": "yes", "extra": "e", "mid": "m(2,)",
    }  # fmt: skip
    assert _stamp_options(sig.options["link_error"][0])["eb"] == "yes"
    sig.stamp(mid="again", append_stamps=True)
    assert sig.options["mid"] == ["again", "m(1, 1)"]
    sig.stamp(mid="third")
    assert sig.options["mid"] == "third"


def test_stamping_canvases(eager_app, impl):
    canvas = _canvas(impl)
    add, _, _ = _tasks(eager_app, impl)
    visitor = _every_hook(canvas)
    group = canvas.group(add.si(1, 1), add.si(2, 2))
    group.stamp(visitor)
    assert [_stamp_options(task)["grp"] for task in group.tasks] == ["g", "g"]
    assert "stamped_headers" not in group.options
    chain = canvas.chain(add.si(1, 1), add.si(2, 2))
    chain.stamp(visitor)
    assert [_stamp_options(task)["stamped_headers"] for task in chain.tasks] == [["chn", "mid"]] * 2
    chord = canvas.chord([add.si(1, 1)], add.s(9))
    chord.stamp(visitor)
    assert _stamp_options(chord.body) == {"stamped_headers": ["body", "grp", "mid"],
                                          "body": "b", "grp": "g", "mid": "m(9,)"}  # fmt: skip
    unvisited = canvas.chord([add.si(1, 1)], add.s(9))
    unvisited.stamp(k="v")
    assert "k" not in unvisited.body.options  # as Celery: only a visitor stamps the body


def test_eager_request_sees_each_stamp_as_a_list(eager_app, impl):
    @eager_app.task(bind=True, shared=False)
    def stamps_seen(self):
        return [sorted(self.request.stamped_headers), self.request.stamps]

    sig = stamps_seen.si()
    sig.stamp(team="ops", ids=[1, 2])
    expected = [["ids", "team"], {"team": ["ops"], "ids": [1, 2]}]
    assert sig.apply_async().get() == expected and sig.apply().get() == expected


def test_group_and_chord_links_as_celery(eager_app, impl):
    canvas = _canvas(impl)
    seen: list = []

    @eager_app.task(shared=False)
    def add(a, b):
        return a + b

    @eager_app.task(shared=False)
    def record(*args):
        seen.append(args)

    @eager_app.task(shared=False)
    def fail(x):
        raise ValueError(x)

    group = canvas.group(add.s(1, 1), add.s(2, 2))
    linked = group.link(record.s("once"))
    assert (linked.immutable, [len(t.options.get("link", [])) for t in group.tasks]) == (
        True,
        [1, 0],
    )
    group.apply_async()
    assert seen == [("once",)]  # the first member's callback, without its value
    failing = canvas.group(add.s(1, 1), fail.s(2))
    assert len(failing.link_error(record.si("failed"))) == 2
    failing.apply_async()
    assert seen[1:] == [("failed",)]
    chord = canvas.chord([add.s(1, 1)], add.s(1))
    callback = record.s("body")
    assert chord.link(callback) is callback and chord.body.options["link"] == [callback]


def test_register_type_makes_travelled_dicts_of_the_class(eager_app, impl):
    canvas = _canvas(impl)
    add, _, _ = _tasks(eager_app, impl)

    @canvas.Signature.register_type(name=f"doubled-{impl.name}")
    class doubled(canvas.Signature):
        @classmethod
        def from_dict(cls, d, app=None):
            return cls(d, app=app)

        def doubled_args(self):
            return tuple(2 * a for a in self.args)

    travelled = dict(add.s(1, 2), subtask_type=f"doubled-{impl.name}")
    made = canvas.maybe_signature(travelled, app=eager_app)
    assert type(made) is doubled
    assert made.doubled_args() == (2, 4)
    assert made.apply().get() == 3
    assert type(canvas.Signature.from_dict(dict(add.s(1, 2)))) is canvas.Signature
    assert type(canvas.Signature.from_dict(dict(canvas.group(add.s(1, 2))))) is canvas.group
    assert canvas.Signature.TYPES[f"doubled-{impl.name}"] is doubled


# -- groups in groups and chord headers, group | group, add_to_chord -----------------------


def test_inner_groups_are_inlined_as_celery_does(eager_app, impl):
    canvas = _canvas(impl)
    add, double, _ = _tasks(eager_app, impl)
    nested = canvas.group(add.s(1, 1), canvas.group(add.s(2, 2), canvas.group(double.s(5))))
    assert nested.apply().get() == [2, 4, 10]  # run here: in order
    frozen = nested.clone()
    results = frozen.freeze().results  # frozen: each inner group's tasks reversed
    assert [task.args for task in frozen.tasks] == [(1, 1), (5,), (2, 2)]
    assert [r.id for r in results] == [task.id for task in frozen.tasks]
    header = [canvas.group(add.s(1, 1), add.s(2, 2)), add.s(3, 3)]
    assert canvas.chord(header, add.si(0, 0)).apply().get() == 0


def test_group_or_group_is_a_chord_of_the_first(eager_app, impl):
    canvas = _canvas(impl)
    add, _, _ = _tasks(eager_app, impl)

    @eager_app.task(shared=False)
    def total(values):
        return sum(values)

    first = canvas.group(add.s(1, 1), add.s(2, 2))
    piped = first | canvas.group(total.s(), total.s())
    assert type(piped).__name__ in ("chord", "_chord")  # Celery's class is _chord
    assert piped.apply().get() == [6, 6]
    assert (first | canvas.group()) is first
    nested = canvas.chord([canvas.group(add.s(1, 1), add.s(2, 2)), add.s(3, 3)], total.s())
    assert nested.apply().get() == 12


def test_add_to_chord_outside_a_chord_raises_value_error(eager_app, impl):
    add, _, _ = _tasks(eager_app, impl)

    @eager_app.task(bind=True, shared=False)
    def grow(self):
        return self.add_to_chord(add.s(1, 1))

    result = grow.apply()
    assert (type(result.result).__name__, str(result.result)) == (
        "ValueError", "Current task is not member of any chord",
    )  # fmt: skip


def _growing(app):
    """Header tasks adding to their chord: ``add(n, n)``, an ``add`` that itself grows
    (``depth`` more), a failing task, or a group (refused)."""
    from spinach_compat import group

    @app.task(shared=False)
    def add(a, b):
        return a + b

    @app.task(shared=False)
    def fail(message):
        raise ValueError(message)

    @app.task(bind=True, shared=False)
    def grow(self, n, kind="add", depth=0):
        added = {
            "add": lambda: add.s(n, n),
            "deeper": lambda: grow.s(n + 1, "deeper" if depth > 1 else "add", depth - 1),
            "fail": lambda: fail.s("added"),
            "group": lambda: group(add.s(n, n)),
        }[kind]()
        self.add_to_chord(added)
        return n

    @app.task(shared=False)
    def collect(values):
        return values

    return grow, add, collect


def test_added_tasks_may_add_more_and_fail_the_chord(app, run_worker):
    grow, add, collect = _growing(app)
    run_worker()
    header = [grow.s(1, "deeper", 2), add.s(10, 10)]
    result = chord(header, collect.s()).apply_async()
    values = result.get(timeout=WAIT)  # grow(1) adds grow(2), which adds grow(3), adding 3+3
    assert sorted(values[:4]) == [1, 2, 3, 6] and values[4:] == [20]
    failing = chord([grow.s(1, "fail")], collect.s()).apply_async()
    with pytest.raises(ChordError, match=r"Dependency .* raised ValueError\('added'\)"):
        failing.get(timeout=WAIT, follow_parents=False)
    refused = chord([grow.s(1, "group")], collect.s()).apply_async()
    with pytest.raises(UnsupportedFeature, match="only a task's signature can join a chord"):
        refused.get(timeout=WAIT)
    assert not app.engine.broker.members(f"chord/{result.parent.id}/added")  # forgotten
