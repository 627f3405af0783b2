"""Celery's names on the facade's classes: refused ones raise when read or set, loud task
and app options are refused when declared, and the cheap ones behave as real Celery's."""

from __future__ import annotations

import json
import warnings
from unittest import mock

import pytest

import spinach_compat
from spinach_compat import _state, surface
from spinach_compat.exceptions import ImproperlyConfigured, UnsupportedFeature
from spinach_compat.result import AsyncResult, GroupResult, result_from_tuple

from ..helpers import wait_until
from .conftest import WAIT
from .surface.test_surface import FIXTURE, inventory

celery = pytest.importorskip("celery")


def _refused_attributes() -> list[tuple[str, str]]:
    return sorted(
        (owner, attr)
        for owner in FIXTURE["classes"]
        for attr, _ in surface.class_refusals(owner).items()
    )


@pytest.fixture(scope="module")
def instances() -> dict:
    previous = _state._current_app
    found = inventory.facade_instances()
    _state._current_app = previous
    return found


@pytest.mark.parametrize(("owner", "attr"), _refused_attributes())
def test_a_refused_class_attribute_raises_when_read_and_set(instances, owner, attr) -> None:
    obj, key = instances[owner], f"{owner}.{attr}"
    with pytest.raises(UnsupportedFeature, match=key.replace(".", r"\.")):
        getattr(obj, attr)
    with pytest.raises(UnsupportedFeature, match=key.replace(".", r"\.")):
        setattr(obj, attr, None)
    # introspection sees the name absent, as for any name an object lacks
    assert not hasattr(obj, attr)
    assert getattr(obj, attr, "absent") == "absent"


def test_introspection_of_a_task_and_an_app_does_not_raise(app) -> None:
    @app.task
    def add(x, y):
        return x + y

    mocked = mock.create_autospec(add, instance=True)
    mocked.delay(1, 2)
    mocked.delay.assert_called_once_with(1, 2)
    with mock.patch.object(add, "delay") as delay:
        add.delay(1, 2)
    delay.assert_called_once_with(1, 2)
    import inspect

    assert dict(inspect.getmembers(add))["name"] == add.name
    assert "replace" in dir(add) and "amqp" in dir(app)


# -- task options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("acks_on_failure", False),
        ("acks_on_timeout", False),
        ("acks_on_failure_or_timeout", False),
        ("retry_on_worker_lost", True),
        ("retry_on_worker_lost", False),
        ("resultrepr_maxsize", 80),
        ("Strategy", "proj.strategy:custom"),
        ("from_config", (("my_option", "my_setting"),)),
    ],
)
def test_a_task_option_the_facade_cannot_honour_is_refused_when_declared(
    app, option, value
) -> None:
    with pytest.raises(UnsupportedFeature, match=rf"task '.*\.job'.*{option}"):

        @app.task(**{option: value})
        def job():
            return None

    assert not [name for name in app.tasks if name.endswith(".job")]


def test_a_task_class_attribute_is_refused_too(app) -> None:
    class Base(spinach_compat.Task):
        def start_strategy(self, app, consumer, **kwargs):
            return None

    with pytest.raises(UnsupportedFeature, match=r"sets start_strategy"):
        app.task(base=Base)(lambda: None)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("acks_on_failure", True),
        ("acks_on_timeout", True),
        ("acks_on_failure_or_timeout", True),
        ("send_events", False),
        ("trail", False),
        ("resultrepr_maxsize", 1024),
    ],
)
def test_a_task_option_describing_the_facade_or_without_effect_is_accepted(
    app, option, value
) -> None:
    task = app.task(**{option: value})(lambda: None)
    assert getattr(task, option) == value


def test_task_options_read_as_celery_s_bound_task(app) -> None:
    def noop():
        return None

    c_app = celery.Celery("c", set_as_current=False)
    c_task = c_app.task(noop, name="c.noop")
    c_task.bind(c_app)
    task = app.task(noop, name="f.noop")
    for option in ("acks_on_failure", "acks_on_timeout", "send_events", "trail"):
        assert getattr(task, option) == getattr(c_task, option), option
    assert task.resultrepr_maxsize == c_task.resultrepr_maxsize
    with pytest.raises(UnsupportedFeature, match="retry_on_worker_lost"):
        task.retry_on_worker_lost  # noqa: B018


def test_a_task_with_a_custom_request_is_refused_when_declared(app) -> None:
    from spinach_compat.worker.request import Request

    class MyRequest(Request):
        def on_failure(self, exc_info, send_failed_event=True, return_ok=False):
            return None

    class Base(spinach_compat.Task):
        Request = MyRequest

    with pytest.raises(UnsupportedFeature, match=r"celery\.worker\.request\.Request"):
        app.task(base=Base)(lambda: None)

    class ByName(spinach_compat.Task):
        name = "proj.by_name"
        Request = "proj.requests:MyRequest"

    with pytest.raises(UnsupportedFeature, match=r"celery\.worker\.request\.Request"):
        app.register_task(ByName)
    assert "proj.by_name" not in app.tasks


def test_on_bound_is_called_with_the_app_when_the_task_is_registered(app) -> None:
    bound = []

    class Base(spinach_compat.Task):
        @classmethod
        def on_bound(cls, app):
            bound.append((cls.name, app))

    task = app.task(base=Base, name="proj.bound")(lambda: None)
    assert bound == [("proj.bound", app)] and task.app is app


def test_task_map_starmap_chunks_make_the_canvas_signatures(app) -> None:
    from spinach_compat import chunks, xmap, xstarmap

    task = app.task(lambda *a: None, name="proj.splittable")
    assert type(task.chunks([(1,)], 1)) is chunks
    assert (type(task.map([1])), type(task.starmap([(1,)]))) == (xmap, xstarmap)
    namespace: dict = {}
    exec("from spinach_compat.canvas import *", namespace)
    assert {"chunks", "xmap", "xstarmap"} <= set(namespace)


# -- the app ---------------------------------------------------------------------------------


def test_an_app_class_replacing_celery_machinery_is_refused_when_declared() -> None:
    with pytest.raises(UnsupportedFeature, match=r"app class .*Custom sets registry_cls"):

        class Custom(spinach_compat.Celery):
            registry_cls = "proj.registry:Registry"


def test_on_init_is_called_at_the_end_of_the_constructor(make_app) -> None:
    seen = []

    class App(spinach_compat.Celery):
        def on_init(self):
            seen.append(self.conf.broker_url)

    app = App("x", broker="memory://", backend="memory://", set_as_current=False)
    assert seen == ["memory://"] and app.main == "x"


def test_set_current_set_default_app_or_default_default_app(make_app) -> None:
    from spinach_compat.app import app_or_default, default_app

    first, second = make_app(set_as_current=False), make_app(set_as_current=False)
    previous_default = _state._default_app
    try:
        first.set_current()
        assert spinach_compat.current_app._get_current_object() is first
        assert app_or_default() is first and app_or_default(second) is second
        second.set_default()
        assert default_app._get_current_object() is second
        assert spinach_compat.current_app._get_current_object() is first  # current wins
    finally:
        _state._default_app = previous_default


def test_config_from_envvar_as_celery(make_app, monkeypatch) -> None:
    monkeypatch.setenv("SURFACE_CONFIG", "tests.compat.settings_module")
    app = make_app()
    app.config_from_envvar("SURFACE_CONFIG", force=True)
    expected = celery.Celery("c", set_as_current=False)
    expected.config_from_envvar("SURFACE_CONFIG", force=True)
    assert app.conf.task_default_queue == expected.conf.task_default_queue == "from-module"
    monkeypatch.delenv("SURFACE_CONFIG")
    for target, error in ((app, ImproperlyConfigured), (expected, Exception)):
        assert target.config_from_envvar("SURFACE_CONFIG", silent=True) is False
        with pytest.raises(error, match="SURFACE_CONFIG"):
            target.config_from_envvar("SURFACE_CONFIG")


@pytest.mark.parametrize("zone", [None, "UTC", "Etc/UTC", "Europe/Paris"])
def test_uses_utc_timezone_and_platform_constants_as_celery(make_app, zone) -> None:
    app = make_app(timezone=zone)
    expected = celery.Celery("c", set_as_current=False, timezone=zone)
    assert app.uses_utc_timezone() == expected.uses_utc_timezone()
    for name in ("SYSTEM", "IS_macOS", "IS_WINDOWS"):
        assert getattr(app, name) == getattr(expected, name)


def test_app_signature_binds_the_app_as_celery(app) -> None:
    c_app = celery.Celery("c", set_as_current=False)
    sig, expected = (
        app.signature("proj.add", (1,), countdown=3),
        c_app.signature("proj.add", (1,), countdown=3),
    )
    assert dict(sig) == dict(expected) and sig.app is app
    from_dict = app.signature(dict(expected))
    assert type(from_dict) is spinach_compat.Signature and from_dict.app is app
    group = spinach_compat.group(sig, sig)
    assert type(app.signature(group)) is spinach_compat.group


def test_app_group_result_and_result_set_are_bound_to_the_app(app) -> None:
    group = app.GroupResult("g", [AsyncResult("a", app=app)])
    assert isinstance(group, GroupResult) and group.app is app
    assert app.GroupResult is app.GroupResult and app.ResultSet([]).app is app
    assert group.backend is app.backend
    assert group.children == group.results  # a property, as Celery's


# -- control ---------------------------------------------------------------------------------


def test_flatten_reply_as_celery() -> None:
    from celery.app.control import flatten_reply as c_flatten

    from spinach_compat.app.control import flatten_reply

    replies = [{"a@h": {"ok": 1}}, {"b@h": {"ok": 2}}]
    assert flatten_reply(replies) == c_flatten(replies)
    twice = [*replies, {"a@h": {"ok": 3}}]
    with pytest.warns(spinach_compat.exceptions.DuplicateNodenameWarning, match="a@h"):
        flattened = flatten_reply(twice)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert flattened == c_flatten(twice)


def test_a_refused_control_command_raises_with_its_reason(app) -> None:
    with pytest.raises(UnsupportedFeature, match=r"Control\.pool_restart.*restart"):
        app.control.pool_restart()
    assert app.control.discard_all() == 0  # Celery's alias of purge


def test_inspect_revoked_lists_the_revoked_ids_per_live_worker(app, run_worker) -> None:
    assert app.control.inspect().revoked() is None  # no worker alive
    run_worker(concurrency=1)
    app.control.revoke(["r1", "r2"])
    replies = app.control.inspect().revoked()
    assert replies == {app.hostname: ["r1", "r2"]}


def test_inspect_query_task_finds_running_and_scheduled_tasks(app) -> None:
    import threading

    started, release = threading.Event(), threading.Event()

    @app.task
    def blocking():
        started.set()
        release.wait(30)

    app.start_worker(concurrency=2, block=False, nodename="n1@host")
    try:
        running, later = blocking.delay(), blocking.apply_async(countdown=3600)
        assert started.wait(15)
        inspect = app.control.inspect()
        replies = inspect.query_task(running.id, later.id, "unknown")
        found = replies["n1@host"]
        assert sorted(found) == sorted([running.id, later.id])
        assert found[running.id][0] == "active" and found[later.id][0] == "scheduled"
        assert found[running.id][1]["name"] == blocking.name
        assert inspect.query_task([running.id]) == {"n1@host": {running.id: found[running.id]}}
        assert inspect.query_task("unknown") == {"n1@host": {}}
    finally:
        release.set()
    assert running.get(timeout=15) is None


def test_inspect_active_safe_shows_the_reprs_in_place_of_the_arguments(app) -> None:
    """As Celery's ``Request.info(safe=True)``: the given ``argsrepr``/``kwargsrepr``, else
    the reprs of the arguments; without ``safe`` the arguments themselves."""
    import threading

    started, release = threading.Event(), threading.Event()

    @app.task
    def holding(card, pin=None):
        started.set()
        release.wait(30)

    app.start_worker(concurrency=2, block=False, nodename="n1@host")
    try:
        hidden = holding.apply_async(("4111",), {"pin": 1}, argsrepr="(<card>,)")
        shown = holding.apply_async(("5500",))
        assert wait_until(lambda: len(app.control.inspect().active()["n1@host"]) == 2, WAIT)
        plain = {i["id"]: i for i in app.control.inspect().active()["n1@host"]}
        safe = {i["id"]: i for i in app.control.inspect().active(safe=True)["n1@host"]}
        assert (plain[hidden.id]["args"], plain[hidden.id]["kwargs"]) == (["4111"], {"pin": 1})
        assert (safe[hidden.id]["args"], safe[hidden.id]["kwargs"]) == ("(<card>,)", "{'pin': 1}")
        assert (safe[shown.id]["args"], safe[shown.id]["kwargs"]) == ("('5500',)", "{}")
        assert started.is_set()
    finally:
        release.set()
    assert hidden.get(timeout=WAIT) is None and shown.get(timeout=WAIT) is None


# -- signatures --------------------------------------------------------------------------------


def _both(*args, **kwargs):
    return spinach_compat.Signature(*args, **kwargs), celery.Signature(*args, **kwargs)


def test_signature_ids_and_type_read_and_set_the_options_as_celery() -> None:
    for ours, theirs in (_both("proj.add", (1,)), _both("proj.add", options={"task_id": "t"})):
        for name in ("id", "parent_id", "root_id", "subtask_type"):
            assert getattr(ours, name) == getattr(theirs, name), name
        ours.id, theirs.id = "new", "new"
        ours.root_id, theirs.root_id = "root", "root"
        assert dict(ours) == dict(theirs)
    group = spinach_compat.group(spinach_compat.signature("proj.add"))
    assert group.subtask_type == "group"


def test_signature_partial_replace_set_immutable_reprcall_as_celery() -> None:
    ours, theirs = _both("proj.add", (1,), {"y": 2}, options={"countdown": 1})
    assert dict(ours.partial((3,), {"z": 4})) == dict(theirs.partial((3,), {"z": 4}))
    assert dict(ours.replace(args=(5,), options={})) == dict(theirs.replace(args=(5,), options={}))
    assert dict(ours.replace()) == dict(theirs.replace())
    assert ours.reprcall(0, z=1) == theirs.reprcall(0, z=1) == "proj.add(0, 1, y=2, z=1)"
    ours.set_immutable(True)
    theirs.set_immutable(True)
    assert dict(ours) == dict(theirs) and ours.reprcall(0) == theirs.reprcall(0)


def test_signature_async_result_is_the_task_s_else_the_app_s(app) -> None:
    task = app.task(lambda: None, name="proj.known")
    result = task.s().AsyncResult("some-id")
    assert isinstance(result, AsyncResult) and result.name == "proj.known"
    other = spinach_compat.Signature("proj.unknown", app=app).AsyncResult("other-id")
    assert other.id == "other-id" and other.app is app


# -- results -------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def results_app(request, make_app):
    if request.param == "memory":
        return make_app()
    url = request.getfixturevalue("redis_url")
    return make_app(broker=url, backend=url)


def test_exists_tells_a_stored_state_from_an_unknown_id(results_app) -> None:
    app = results_app
    stored, unknown = AsyncResult("stored", app=app), AsyncResult("unknown", app=app)
    app.backend.store_result("stored", None, "PENDING")
    assert stored.state == unknown.state == "PENDING"
    assert stored.exists() and not unknown.exists()
    stored.forget()
    assert not stored.exists()


def test_a_saved_group_is_restored_deleted_and_stored_as_celery(results_app) -> None:
    app = results_app
    parent = AsyncResult("p", app=app)
    group = GroupResult("g1", [AsyncResult("a", app=app), AsyncResult("b", app=app)],
                       parent=parent, app=app)  # fmt: skip
    assert GroupResult.restore("g1", app=app) is None
    assert group.save() is group
    restored = GroupResult.restore("g1", app=app)
    assert restored == group and restored.parent == parent
    assert app.GroupResult.restore("g1") == group  # the app's class knows its app
    stored = json.loads(app.backend._get(app.backend.group_key("g1")))
    c_app = celery.Celery("c", set_as_current=False)
    c_group = c_app.GroupResult(
        "g1", [c_app.AsyncResult("a"), c_app.AsyncResult("b")], parent=c_app.AsyncResult("p")
    )
    assert stored == json.loads(json.dumps({"result": c_group.as_tuple()}))
    from celery.result import result_from_tuple as c_from_tuple

    assert [r.id for r in c_from_tuple(stored["result"], c_app).results] == ["a", "b"]
    group.delete()
    assert GroupResult.restore("g1", app=app) is None


def test_tuples_and_lists_of_results_as_celery(app) -> None:
    c_app = celery.Celery("c", set_as_current=False)
    ours = AsyncResult("child", app=app, parent=AsyncResult("root", app=app))
    theirs = c_app.AsyncResult("child", parent=c_app.AsyncResult("root"))
    assert ours.as_tuple() == theirs.as_tuple() and ours.as_list() == theirs.as_list()
    back = result_from_tuple(json.loads(json.dumps(ours.as_tuple())), app)
    assert back == ours and back.parent.id == "root"
    assert result_from_tuple(ours) is ours


def test_a_disabled_backend_refuses_to_save_or_check(make_app) -> None:
    app = make_app(backend=None)
    with pytest.raises(NotImplementedError, match="result_backend"):
        AsyncResult("x", app=app).exists()
    with pytest.raises(NotImplementedError, match="result_backend"):
        GroupResult("g", [], app=app).save()


def test_the_checker_agrees_with_the_task_options_refused_when_declared() -> None:
    from spinach_compat import check
    from spinach_compat.app import task

    def status(key: str, value: object) -> str:
        report = check.Report("x")
        report.add("f", 1, key, value)
        return report.findings[0].status

    for option, (accepted, _) in task.ACCEPTED_VALUES.items():
        assert status(f"task:{option}", False) == check.UNSUPPORTED, option
        assert all(status(f"task:{option}", v) == check.SUPPORTED for v in accepted), option
    for name in (*task.WORKER_ONLY, "Request"):
        assert status(f"task:{name}", "proj:custom") == check.UNSUPPORTED, name
    assert status("task:resultrepr_maxsize", 80) == check.UNSUPPORTED


def test_a_mixin_setting_a_worker_only_attribute_is_refused_too(app) -> None:
    class StrategyMixin:
        Strategy = "proj.strategy:custom"

    class Base(StrategyMixin, spinach_compat.Task):
        pass

    with pytest.raises(UnsupportedFeature, match=r"sets Strategy"):
        app.task(base=Base)(lambda: None)


@pytest.fixture
def shared_factories():
    """The shared tasks a test declares are not added to the apps of later tests."""
    saved = list(_state._shared_factories)
    yield
    _state._shared_factories[:] = saved


def test_close_forgets_the_app_for_shared_tasks_declared_later(shared_factories) -> None:
    from spinach_compat import shared_task

    with spinach_compat.Celery("closing", broker="memory://", set_as_current=False) as app:

        @shared_task(name="surface.before_close")
        def before():
            return None

        assert "surface.before_close" in app.tasks
    assert app not in _state.all_apps()

    @shared_task(name="surface.after_close")
    def after():
        return None

    assert "surface.after_close" not in app.tasks


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("task_acks_on_failure_or_timeout", False),
        ("task_acks_on_failure", False),
        ("task_acks_on_timeout", False),
        ("task_retry_on_worker_lost", True),
    ],
)
def test_the_settings_of_the_refused_task_options_are_refused_too(make_app, setting, value):
    from spinach_compat import check

    app = make_app(**{setting: value})
    with pytest.raises(UnsupportedFeature, match=setting):
        app.conf.check_supported()
    make_app(**{setting: not value}).conf.check_supported()  # what the facade does
    report = check.Report("x")
    report.add("f", 1, f"setting:{setting}", value)
    report.add("f", 2, f"setting:{setting}", not value)
    assert [f.status for f in report.findings] == [check.UNSUPPORTED, check.SUPPORTED]
