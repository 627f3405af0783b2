"""The canvas corners on real worker processes: ``tests.compat.canvas_proj`` run by the
facade's worker and by a real Celery 5.7 worker, each on its own Redis db, with the same
expected outcomes (values, states, exception types and texts).

One worker per implementation serves the whole module (Celery's starts slowly).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from ..helpers import wait_until
from .worker_process import project_worker

WAIT = 30.0
TASKS = "tests.compat.canvas_proj.tasks"
DBS = {"spinach_compat": 7, "celery": 8}


def _impl(name: str) -> SimpleNamespace:
    if name == "celery":
        celery = pytest.importorskip("celery")
        from celery import canvas
    else:
        import spinach_compat as celery
        from spinach_compat import canvas
    return SimpleNamespace(
        Celery=celery.Celery, group=celery.group, chain=celery.chain, chord=celery.chord,
        chunks=canvas.chunks, xmap=canvas.xmap, xstarmap=canvas.xstarmap,
        StampingVisitor=canvas.StampingVisitor,
    )  # fmt: skip


@pytest.fixture(scope="module", params=["spinach_compat", "celery"])
def proj(request, redis_server, tmp_path_factory):
    """A worker of the project (facade, then real Celery) and a client app."""
    name = request.param
    log = tmp_path_factory.mktemp(name) / "worker.log"
    args = ["-c", "4", "-l", "info", "-n", f"{name}@%h"]
    with project_worker(name, redis_server, DBS[name], log, args, "tests.compat.canvas_proj") as (
        worker, url,
    ):  # fmt: skip
        impl = _impl(name)
        app = impl.Celery("canvas_proj", broker=url, backend=url, set_as_current=False)
        yield SimpleNamespace(name=name, app=app, impl=impl, worker=worker)


def _sig(proj, name: str, *args, **options):
    return proj.app.signature(f"{TASKS}.{name}", args, **options)


def _exception_of(result) -> BaseException:
    with pytest.raises(Exception) as info:
        result.get(timeout=WAIT)
    return info.value


# -- chunks, map, starmap ------------------------------------------------------------------


def test_chunks_send_a_group_of_starmaps(proj):
    pairs = zip(range(7), range(7), strict=True)
    chunks = proj.impl.chunks(_sig(proj, "add"), pairs, 3, app=proj.app)
    result = chunks.apply_async()
    assert type(result).__name__ == "GroupResult" and len(result.results) == 3
    assert result.get(timeout=WAIT) == [[0, 2, 4], [6, 8, 10], [12]]
    assert [r.state for r in result.results] == ["SUCCESS"] * 3
    assert result.supports_native_join is True
    assert result.join_native(timeout=WAIT) == [[0, 2, 4], [6, 8, 10], [12]]
    assert chunks.group().skew(start=1, step=0.5).tasks[2].options["countdown"] == 2.0


def test_map_and_starmap_run_in_one_task(proj):
    mapped = proj.impl.xmap(_sig(proj, "double"), [1, 2, 3], app=proj.app)
    result = mapped.delay()
    assert type(result).__name__ == "AsyncResult"
    assert result.get(timeout=WAIT) == [2, 4, 6]
    starmapped = proj.impl.xstarmap(_sig(proj, "add"), [(1, 2), (3, 4)], app=proj.app)
    assert starmapped.apply_async().get(timeout=WAIT) == [3, 7]


def test_a_failing_call_fails_the_map(proj):
    result = proj.impl.xmap(_sig(proj, "fail"), ["boom"], app=proj.app).delay()
    exc = _exception_of(result)
    assert (type(exc).__name__, str(exc), result.state) == ("ValueError", "boom", "FAILURE")


# -- Task.replace --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value"), [("sig", 3), ("group", [2, 4]), ("chain", 12), ("chain-to-group", [4, 4])]
)
def test_replaced_task_gives_the_replacements_value(proj, kind, value):
    result = _sig(proj, "replaced", kind).delay()
    assert result.get(timeout=WAIT) == value
    assert result.state == "SUCCESS"


def test_replaced_task_in_a_chain_passes_the_value_on(proj):
    chain = proj.impl.chain(_sig(proj, "replaced", "chain"), _sig(proj, "add", 100))
    result = chain.apply_async()
    assert result.get(timeout=WAIT) == 112
    assert result.parent.get(timeout=WAIT) == 12


def test_replaced_tasks_in_a_chord_header(proj):
    header = [_sig(proj, "replaced", kind, immutable=True) for kind in ("sig", "chain")]
    body = _sig(proj, "total")
    result = proj.impl.chord([*header, _sig(proj, "add", 1, 1)], body).apply_async()
    assert result.get(timeout=WAIT) == 3 + 12 + 2
    grouped = proj.impl.chord([_sig(proj, "replaced", "group")], _sig(proj, "collect"))
    assert grouped.apply_async().get(timeout=WAIT) == [[2, 4]]


def test_a_failing_replacement_fails_the_task_and_calls_its_errbacks(proj):
    result = _sig(proj, "replaced", "fail").apply_async(link_error=_sig(proj, "note_failure"))
    exc = _exception_of(result)
    assert (type(exc).__name__, str(exc), result.state) == ("ValueError", "replaced", "FAILURE")
    noted = proj.app.AsyncResult(f"{result.id}-errback")
    wait_until(lambda: noted.state == "SUCCESS", timeout=WAIT)
    assert noted.result == result.id


def test_on_replace_is_called_with_the_replacement(proj):
    result = _sig(proj, "hooked", "sig").delay()
    assert result.get(timeout=WAIT) == 3
    hook = proj.app.AsyncResult(f"{result.id}-hook")
    assert (hook.state, hook.result) == ("SUCCESS", f"{TASKS}.add")


# -- result trees: children, collect, graph ------------------------------------------------


def _tree(result) -> list:
    """Each result of the tree as ``(kind, value)``, in Celery's breadth-first order."""
    return [(type(node).__name__, value) for node, value in result.collect(timeout=WAIT)]


def test_children_and_collect_follow_the_tasks_sent(proj):
    result = _sig(proj, "fan_out", 2).delay()
    group_id = result.get(timeout=WAIT)
    wait_until(lambda: all(child.ready() for child in result.children[0]), timeout=WAIT)
    (group_result,) = result.children
    assert (type(group_result).__name__, group_result.id) == ("GroupResult", group_id)
    for member in group_result.results:
        wait_until(lambda m=member: bool(m.children) and m.children[0].ready(), timeout=WAIT)
    tree = _tree(result)
    assert tree[0] == ("AsyncResult", group_id)
    assert tree[1][0] == "GroupResult" and len(tree) == 6
    assert sorted(value for kind, value in tree[4:]) == [0, 1]
    graph = result.graph
    assert len(graph) == 6 and next(iter(graph)) == result
    assert graph[result] == [group_result]


def test_a_call_with_add_to_parent_false_is_no_child(proj):
    result = _sig(proj, "adopts_one", 2, 3).delay()
    adopted, orphan = result.get(timeout=WAIT)
    assert [child.id for child in result.children] == [adopted]
    assert orphan != adopted


def test_a_chain_result_has_the_next_task_as_child(proj):
    chain = proj.impl.chain(_sig(proj, "add", 1, 2), _sig(proj, "double"))
    last = chain.apply_async()
    assert last.get(timeout=WAIT) == 6
    first = last.parent
    assert [child.id for child in first.children] == [last.id]
    assert [value for _, value in first.collect(timeout=WAIT)] == [3, 6]
    assert first.get_leaf() == 6
    assert last.children == []


# -- stamping ------------------------------------------------------------------------------


def _visitor(proj):
    class Monitoring(proj.impl.StampingVisitor):
        def on_signature(self, sig, **headers):
            return {"mid": f"m{sig.args}"}

        def on_chain_start(self, chain, **headers):
            return {"flow": "nightly"}

    return Monitoring()


def test_stamps_reach_the_worker_request(proj):
    sig = _sig(proj, "stamps_seen", 1)
    sig.stamp(_visitor(proj), team="ops")
    assert sig.delay().get(timeout=WAIT) == [["mid", "team"], {"mid": "m(1,)", "team": "ops"}]
    chain = proj.impl.chain(_sig(proj, "stamps_seen", 1), _sig(proj, "stamps_seen"))
    chain.stamp(_visitor(proj))
    assert chain.apply_async().get(timeout=WAIT) == [
        ["flow", "mid"], {"flow": "nightly", "mid": "m()"},
    ]  # fmt: skip
    assert _sig(proj, "stamps_seen").delay().get(timeout=WAIT) == [[], {}]


def test_revoke_by_stamped_headers_discards_the_stamped_task(proj):
    doomed = _sig(proj, "add", 1, 1)
    doomed.stamp(batch="b-doomed")
    kept = _sig(proj, "add", 2, 2)
    kept.stamp(batch="b-kept")
    first = doomed.apply_async(countdown=1)
    first.revoke_by_stamped_headers({"batch": ["b-doomed", "b-other"]})
    second = kept.apply_async(countdown=1)
    exc = _exception_of(first)
    assert (type(exc).__name__, first.state) == ("TaskRevokedError", "REVOKED")
    assert second.get(timeout=WAIT) == 4


# -- nested chords, chords of chains, chord errors -------------------------------------------


def test_chords_of_chains_and_nested_chords(proj):
    chord, add, total = proj.impl.chord, "add", "total"
    of_chains = chord([_sig(proj, add, 1, 1) | _sig(proj, "double"), _sig(proj, add, 2, 2)],
                      _sig(proj, total))  # fmt: skip
    assert of_chains.apply_async().get(timeout=WAIT) == 2 * 2 + 4
    inner = chord([_sig(proj, add, 1, 1), _sig(proj, add, 2, 2)], _sig(proj, total))
    nested = chord([inner, _sig(proj, add, 3, 3)], _sig(proj, total))
    assert nested.apply_async().get(timeout=WAIT) == 2 + 4 + 6
    fan = chord([_sig(proj, add, 5), _sig(proj, add, 6)], _sig(proj, total))
    chain_to_chord = chord([_sig(proj, add, 1, 1) | fan, _sig(proj, add, 3, 3)], _sig(proj, total))
    assert chain_to_chord.apply_async().get(timeout=WAIT) == (2 + 5) + (2 + 6) + 6


def test_a_failed_header_task_fails_the_body_with_a_chord_error(proj):
    header = [_sig(proj, "add", 1, 1), _sig(proj, "fail", "x")]
    result = proj.impl.chord(header, _sig(proj, "total")).apply_async(
        link_error=_sig(proj, "note_failure")
    )
    exc = _exception_of(result)  # as Celery: the failed parent's error comes first
    assert (type(exc).__name__, str(exc)) == ("ValueError", "x")
    body_error = result.get(timeout=WAIT, propagate=False)
    culprit = result.parent.results[1].id
    assert (type(body_error).__name__, str(body_error)) == (
        "ChordError", f"Dependency {culprit} raised ValueError('x')",
    )  # fmt: skip
    with pytest.raises(Exception, match="Dependency") as raised:
        result.get(timeout=WAIT, follow_parents=False)
    assert type(raised.value).__name__ == "ChordError"
    assert result.state == "FAILURE"
    noted = proj.app.AsyncResult(f"{result.id}-errback")
    wait_until(lambda: noted.state == "SUCCESS", timeout=WAIT)
    assert noted.result == result.id


def test_an_expired_header_task_fails_the_body(proj):
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    expired = _sig(proj, "add", 2, 2).set(expires=past)
    result = proj.impl.chord([_sig(proj, "add", 1, 1), expired], _sig(proj, "total")).delay()
    body_error = result.get(timeout=WAIT, propagate=False)
    culprit = result.parent.results[1]
    assert (type(body_error).__name__, str(body_error)) == (
        "ChordError", f"Dependency {culprit.id} raised TaskRevokedError('expired')",
    )  # fmt: skip
    assert (culprit.state, result.state) == ("REVOKED", "FAILURE")


def test_revoke_by_stamped_headers_terminates_a_running_task(proj):
    if proj.name != "spinach_compat":
        pytest.skip("facade only: Celery's thread pool does not terminate tasks")
    sig = _sig(proj, "spin", WAIT)
    sig.stamp(batch="b-running")
    running = sig.delay()
    assert wait_until(lambda: running.state == "PROGRESS", timeout=WAIT)  # started, not fetched
    running.revoke_by_stamped_headers({"batch": "b-running"}, terminate=True, signal="SIGKILL")
    exc = _exception_of(running)
    assert (type(exc).__name__, exc.args, running.state) == (
        "TaskRevokedError", ("terminated",), "REVOKED",
    )  # fmt: skip
    assert _sig(proj, "add", 2, 2).delay().get(timeout=WAIT) == 4


# -- add_to_chord, groups in a chord's header, group | group, iter_native ------------------


@pytest.mark.parametrize("lazy", [False, True])
def test_add_to_chord_makes_the_body_wait_for_the_added_tasks(proj, lazy):
    p = uuid.uuid4().hex
    header = [
        _sig(proj, "grow", 1, f"{p}-g1-late", lazy, task_id=f"{p}-g1"),
        _sig(proj, "grow", 2, f"{p}-a-early", lazy, task_id=f"{p}-g2"),
        _sig(proj, "add", 10, 10),
    ]
    result = proj.impl.chord(header, _sig(proj, "collect")).apply_async()
    # as Celery's Redis backend: by the adder's position, a tie ordered by task id
    assert result.get(timeout=WAIT) == [1, 2, 4, 2, 20]
    assert proj.app.AsyncResult(f"{p}-a-early").get(timeout=WAIT) == 4


def test_add_to_chord_outside_a_chord_fails_the_task(proj):
    result = _sig(proj, "grow", 1, f"{uuid.uuid4().hex}-x").delay()
    exc = _exception_of(result)
    message = "Current task is not member of any chord"
    assert (type(exc).__name__, str(exc)) == ("ValueError", message)


def test_groups_in_a_chord_header_are_inlined(proj):
    inner = proj.impl.group(_sig(proj, "add", 1, 1), _sig(proj, "add", 2, 2))
    deeper = proj.impl.group(_sig(proj, "add", 4, 4), proj.impl.group(_sig(proj, "double", 5)))
    chord = proj.impl.chord([inner, _sig(proj, "add", 3, 3), deeper], _sig(proj, "collect"))
    result = chord.apply_async()
    # as Celery: the header's result is flat, each inner group's tasks in reverse order
    assert [type(r).__name__ for r in result.parent.results] == ["AsyncResult"] * 5
    assert result.get(timeout=WAIT) == [4, 2, 6, 10, 8]


def test_group_or_group_and_chord_called_with_its_body(proj):
    first = proj.impl.group(_sig(proj, "add", 1, 1), _sig(proj, "add", 2, 2))
    second = proj.impl.group(_sig(proj, "total"), _sig(proj, "collect"))
    piped = first | second
    assert type(piped).__name__ in ("chord", "_chord")  # Celery's class is _chord
    result = piped.apply_async()
    assert type(result).__name__ == "GroupResult"
    assert result.get(timeout=WAIT) == [6, [2, 4]]
    assert (first | proj.impl.group()) is first
    called = proj.impl.chord([_sig(proj, "add", 5, 5)])(_sig(proj, "total"))
    assert called.get(timeout=WAIT) == 10


def test_iter_native_yields_each_task_meta(proj):
    group = proj.impl.group(
        _sig(proj, "add", 1, 1), _sig(proj, "fail", "x"), proj.impl.group(_sig(proj, "add", 5, 5))
    )
    result = group.apply_async()
    ids = [r.id for r in result.results]
    assert len(ids) == 3  # as Celery: the inner group is inlined
    metas = dict(result.iter_native(timeout=WAIT))
    assert sorted(metas) == sorted(ids)
    assert [(metas[i]["status"], metas[i]["result"]) for i in (ids[0], ids[2])] == [
        ("SUCCESS", 2), ("SUCCESS", 10),
    ]  # fmt: skip
    failed = metas[ids[1]]
    assert (failed["status"], type(failed["result"]).__name__, str(failed["result"])) == (
        "FAILURE", "ValueError", "x",
    )  # fmt: skip
    assert failed["task_id"] == ids[1] and "ValueError" in failed["traceback"]


def test_a_terminated_header_task_fails_the_body(proj):
    if proj.name != "spinach_compat":
        pytest.skip("facade only: Celery's thread pool does not terminate tasks")
    header = [_sig(proj, "spin", WAIT), _sig(proj, "add", 1, 1)]
    result = proj.impl.chord(header, _sig(proj, "total")).delay()
    running = result.parent.results[0]
    assert wait_until(lambda: running.state == "PROGRESS", timeout=WAIT)
    running.revoke(terminate=True, signal="SIGKILL")
    body_error = result.get(timeout=WAIT, propagate=False)
    assert (type(body_error).__name__, str(body_error)) == (
        "ChordError", f"Dependency {running.id} raised TaskRevokedError('terminated')",
    )  # fmt: skip
