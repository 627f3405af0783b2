"""The app's constructor options, ``task_routes``, task decorators and Celery 3 setting names.

Most tests run on real Celery and on the facade (``impl``) and expect the same outcome.
"""

from __future__ import annotations

import re
import sys
from types import SimpleNamespace
from unittest import mock

import pytest

from spinach_compat import _state, shared_task
from spinach_compat.app.defaults import OLD_NAMES
from spinach_compat.exceptions import UnsupportedFeature
from spinach_compat.interop.legacy import is_legacy, legacy_queues


@pytest.fixture
def make(impl):
    """Make apps of ``impl``, never made the current app."""
    previous = _state._current_app
    apps = []

    def make_app(*args, **kwargs):
        kwargs.setdefault("set_as_current", False)
        apps.append(impl.Celery(*args, **kwargs))
        return apps[-1]

    yield make_app
    for app in apps:
        if impl.name == "spinach_compat":
            app.stop_worker()
    _state._current_app = previous


def _base_class(impl):
    class CustomTask(impl.Task):
        marker = "custom"

    return CustomTask


# -- constructor options ---------------------------------------------------------------------


def test_task_cls_and_changes(make, impl):
    app = make("opts", task_cls=_base_class(impl), changes={"task_default_queue": "q2"})

    @app.task(name="opts.by_class")
    def add(a, b):
        return a + b

    assert (add.marker, app.conf.task_default_queue) == ("custom", "q2")


def test_task_cls_by_name(make, impl, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "NamedBase", _base_class(impl), raising=False)
    app = make("opts", task_cls=f"{__name__}:NamedBase")

    @app.task(name="opts.by_name")
    def add(a, b):
        return a + b

    assert add.marker == "custom"
    assert issubclass(app.Task, sys.modules[__name__].NamedBase)


def test_settings_precedence(make, impl):
    source = SimpleNamespace(
        task_default_queue="source", task_default_priority=1, broker_url="memory://source",
        task_default_rate_limit="1/s",
    )  # fmt: skip
    app = make(
        "opts", broker="memory://given", config_source=source, task_default_queue="keyword",
        task_default_rate_limit=None, changes={"task_default_queue": "changes", "timezone": "UTC"},
    )  # fmt: skip
    conf = app.conf
    assert (conf.broker_url, conf.task_default_queue) == ("memory://given", "keyword")
    assert (conf.timezone, conf.task_default_priority) == ("UTC", 1)
    assert conf.task_default_rate_limit == "1/s"  # a None keyword is no setting


def test_conf_update_wins_over_a_later_source(make, impl):
    app = make("opts")
    app.conf.update(task_default_queue="updated")
    app.config_from_object({"task_default_queue": "source", "task_track_started": True})
    assert (app.conf.task_default_queue, app.conf.task_track_started) == ("updated", True)


def test_namespace_of_the_constructor(make, impl):
    settings = SimpleNamespace(CELERY_TASK_DEFAULT_QUEUE="prefixed", task_default_queue="plain")
    assert make("opts", namespace="CELERY", config_source=settings).conf.task_default_queue == (
        "prefixed"
    )
    app = make("opts", namespace="CELERY")
    app.config_from_object(settings)
    assert app.conf.task_default_queue == "prefixed"


def test_silent_configuration_sources(make, impl):
    app = make("opts", config_source="no_such_module_here", config_source_silent=True)
    app.config_from_object("no_such_module_either", silent=True)
    assert app.conf.task_default_queue == "celery"
    with pytest.raises(ImportError):  # read at once by Celery (configured), at next use by us
        app.config_from_object("no_such_module_either")
        _ = app.conf.task_default_queue


def test_config_from_object_force_reads_now(make, impl):
    app = make("opts")
    conf = app.config_from_object({"task_default_queue": "forced"}, force=True)
    assert conf.task_default_queue == "forced"


def test_strict_typing(make, impl):
    loose, strict = make("opts", strict_typing=False), make("opts")
    for app in (loose, strict):
        app.conf.task_always_eager = True

    @loose.task
    def unchecked(a):
        return a

    @loose.task(typing=True)
    def checked(a):
        return a

    @strict.task
    def strict_add(a):
        return a

    assert unchecked.delay(1, 2).state == "FAILURE"  # the call itself fails, not delay()
    for task in (checked, strict_add):
        with pytest.raises(TypeError):
            task.delay(1, 2)


def test_accepted_constructor_arguments(make, impl, monkeypatch):
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    for arguments in ({"loader": "app"}, {"fixups": ["celery.fixups.django:fixup"]}, {}):
        app = make("opts", **arguments)
        assert app.conf.task_default_queue == "celery"
    assert make("opts", fixups=[]).conf.task_default_queue == "celery"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"loader": "proj.loaders:Loader"}, "the only loader"),
        ({"amqp": "proj.amqp:AMQP"}, "amqp cannot be replaced"),
        ({"events": "proj:Events"}, "events cannot be replaced"),
        ({"log": "proj:Logging"}, "log cannot be replaced"),
        ({"control": "proj:Control"}, "control cannot be replaced"),
        ({"tasks": {}}, "tasks cannot be replaced"),
        ({"fixups": ["proj.fixups:fixup"]}, "the only fix-up"),
        ({"autofinalize": False}, "registered when declared"),
        ({"task_cls": object}, r"subclass spinach_compat\.Task"),
    ],
)
def test_unsupported_constructor_arguments_raise(make_app, arguments, message):
    with pytest.raises(UnsupportedFeature, match=message):
        make_app(**arguments)


def test_leaving_the_django_fixup_out_is_refused_for_django(make_app, monkeypatch):
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "proj.settings")
    with pytest.raises(UnsupportedFeature, match="Django is always set up"):
        make_app(fixups=[])


def test_a_task_cls_by_name_is_checked_at_first_use(make_app):
    """At construction when shared tasks are to be registered with the app, else later."""
    try:
        with pytest.raises(UnsupportedFeature, match="task_cls"):
            app = make_app(task_cls="builtins:object")

            @app.task
            def add(a, b):
                return a + b

    finally:  # no shared task is to be registered with it
        _state._apps[:] = [app for app in _state._apps if app.task_cls != "builtins:object"]


# -- task decorators -------------------------------------------------------------------------


def test_app_task_of_a_function_with_options(make, impl):
    app = make("opts")

    def mul(a, b):
        return a * b

    task = app.task(mul, name="opts.mul")
    assert task.name == "opts.mul"
    assert app.tasks["opts.mul"](2, 3) == 6
    with pytest.raises(TypeError, match="must be a callable"):
        app.task("opts.mul")
    with pytest.raises(TypeError, match="exactly 1 argument"):
        app.task(mul, mul)


def test_app_task_filter_option(make, impl):
    app = make("opts")
    seen = []

    @app.task(filter=lambda task: seen.append(task.name) or task, name="opts.filtered")
    def filtered():
        return 1

    assert (seen, filtered.name) == (["opts.filtered"], "opts.filtered")


def test_shared_task_of_a_function_with_options(make, impl):
    shared = pytest.importorskip("celery").shared_task if impl.name == "celery" else shared_task

    def shared_add(a, b):
        return a + b

    shared(shared_add, name=f"opts.{impl.name}.add")
    app = make("opts")
    assert app.tasks[f"opts.{impl.name}.add"](2, 3) == 5


def test_shared_task_applied_twice_raises():
    def twice():
        return 1

    with pytest.raises(TypeError, match="more than once"):
        shared_task(shared_task(twice, name="opts.twice"))


# -- task_routes -----------------------------------------------------------------------------


def _router(name, args, kwargs, options, task=None, **kw):
    if name == "r.string":
        return "string-q"
    if name == "r.dict":
        return {"queue": "dict-q"}
    if name == "r.args":
        return {"queue": "big-q"} if args and args[0] > 1 else None
    return None


class Celery3Router:
    """A router of Celery 3: an object with ``route_for_task``."""

    def route_for_task(self, task, args=None, kwargs=None):
        return {"queue": "old-style-q"} if task == "o.x" else None


ROUTES = [
    {
        "proj.*": "bulk",
        "proj.urgent": {"queue": "fast"},
        re.compile(r"proj2\..*"): "q2",
        "a?c": "literal",
    },
    f"{__name__}._router",
    f"{__name__}:Celery3Router",
    (("t.pairs", "pairs-q"),),
]

ROUTED = [
    ("proj.urgent", (), "fast"),  # the exact name first, whatever the order
    ("proj.x", (), "bulk"),
    ("proj2.x", (), "q2"),  # re.compile keys
    ("xproj2.x", (), "celery"),  # matched from the start of the name
    ("abc", (), "celery"),  # only '*' makes a glob
    ("a?c", (), "literal"),
    ("r.string", (), "string-q"),  # routers by name, returning a queue name or a dict
    ("r.dict", (), "dict-q"),
    ("r.args", (2,), "big-q"),  # routers see the message's arguments
    ("r.args", (1,), "celery"),
    ("o.x", (), "old-style-q"),
    ("t.pairs", (), "pairs-q"),  # a list of pairs
    ("none", (), "celery"),
]


def _routed_queue(app, impl, name, args=()):
    """The queue a message of ``name`` goes to."""
    if impl.name == "celery":
        return app.amqp.router.route({}, name, args, {})["queue"].name
    broker = app.engine.broker
    before = broker.queue_lengths()
    app.send_task(name, args)
    after = broker.queue_lengths()
    (queue,) = [queue for queue in after if after[queue] != before.get(queue, 0)]
    return queue


@pytest.mark.parametrize(("name", "args", "queue"), ROUTED)
def test_task_routes(make, impl, name, args, queue):
    app = make("opts", broker="memory://", task_routes=ROUTES)
    assert _routed_queue(app, impl, name, args) == queue


@pytest.mark.parametrize(
    ("routes", "name", "queue"),
    [
        ({"x": "q"}, "x", "q"),
        ([{"x": {"queue": "q"}}], "x", "q"),
        (f"{__name__}._router", "r.string", "string-q"),
        (_router, "r.dict", "dict-q"),
        ((_router,), "r.string", "string-q"),
    ],
)
def test_task_routes_forms(make, impl, routes, name, queue):
    app = make("opts", broker="memory://", task_routes=routes)
    assert _routed_queue(app, impl, name) == queue


def test_own_queue_and_option_win_over_routes(make_app):
    app = make_app(task_routes={"opts.*": "routed"})

    @app.task(name="opts.own", queue="own")
    def own():
        pass

    @app.task(name="opts.plain")
    def plain():
        pass

    for send in (own.delay, lambda: plain.apply_async(queue="option"), plain.delay):
        send()
    assert app.engine.broker.queue_lengths() == {"own": 1, "option": 1, "routed": 1}


def test_router_functions_are_asked_only_for_messages(make_app):
    calls = []

    def router(name, args, kwargs, options, task=None, **kw):
        calls.append((name, tuple(args)))
        return "dynamic"

    app = make_app(task_routes=[{"opts.mapped": "mapped"}, router])

    @app.task(name="opts.mapped")
    def mapped():
        pass

    @app.task(name="opts.dynamic")
    def dynamic(a):
        pass

    assert set(app.all_queues()) == {"celery", "mapped"} and calls == []
    dynamic.delay(7)
    assert calls == [("opts.dynamic", (7,))]
    assert app.engine.broker.queue_lengths() == {"dynamic": 1}


def test_invalid_task_routes_raise(make_app):
    app = make_app(task_routes=[42])
    with pytest.raises(TypeError, match="task_routes"):
        app.send_task("x")


# -- Celery 3 setting names ------------------------------------------------------------------

OLD_STYLE = SimpleNamespace(
    BROKER_URL="memory://", CELERY_ALWAYS_EAGER=True, CELERY_RESULT_BACKEND="memory://",
    CELERYD_CONCURRENCY=3, CELERY_DEFAULT_QUEUE="old-q", CELERY_TASK_RESULT_EXPIRES=60,
    CELERYBEAT_SCHEDULE={}, DEBUG=True, spinach_namespace="ns",
)  # fmt: skip


def test_old_setting_names(make, impl):
    app = make("opts")
    app.config_from_object(OLD_STYLE)
    conf = app.conf
    assert (conf.broker_url, conf.task_always_eager, conf.result_backend) == (
        "memory://", True, "memory://",
    )  # fmt: skip
    assert (conf.worker_concurrency, conf.task_default_queue, conf.result_expires) == (
        3, "old-q", 60,
    )  # fmt: skip
    assert (conf["CELERY_DEFAULT_QUEUE"], conf.get("CELERYD_CONCURRENCY")) == ("old-q", 3)
    assert "CELERY_ALWAYS_EAGER" in conf


@pytest.mark.parametrize(
    ("settings", "rename"),
    [
        ({"BROKER_URL": "memory://", "task_default_queue": "q"}, "BROKER_URL"),
        ({"BROKER_URL": "memory://", "task_always_eager": True, "timezone": "UTC"}, "BROKER_URL"),
        ({"BROKER_URL": "memory://", "CELERY_ALWAYS_EAGER": True, "timezone": "UTC"}, "timezone"),
    ],
)
def test_mixing_old_and_new_names_raises(make, impl, settings, rename):
    app = make("opts")
    app.config_from_object(settings)
    with pytest.raises(impl.exceptions.ImproperlyConfigured, match=rename):
        _ = app.conf.task_default_queue


def test_one_setting_under_both_names_is_no_mix(make, impl):
    app = make("opts")
    app.config_from_object({"BROKER_URL": "memory://old", "broker_url": "memory://new"})
    assert app.conf.broker_url == "memory://new"


def test_constructor_settings_are_left_out_of_the_mix_check(make, impl):
    app = make("opts", broker="memory://given")
    app.config_from_object({"broker_url": "memory://source", "CELERY_ALWAYS_EAGER": True})
    assert (app.conf.broker_url, app.conf.task_always_eager) == ("memory://given", True)


def test_old_names_in_changes_are_checked_without_a_source(make, impl):
    mixed = {"CELERY_ALWAYS_EAGER": True, "task_default_queue": "q"}
    with pytest.raises(impl.exceptions.ImproperlyConfigured, match="CELERY_ALWAYS_EAGER"):
        _ = make("opts", changes=mixed).conf.task_default_queue
    app = make("opts", changes=mixed, config_source={"timezone": "UTC"})
    assert (app.conf.task_always_eager, app.conf.task_default_queue) == (True, "q")


def test_old_names_as_keywords_and_updates(make, impl):
    app = make("opts", BROKER_URL="memory://kw", CELERY_ALWAYS_EAGER=True)
    app.conf.update(CELERY_DEFAULT_QUEUE="updated")
    app.conf.CELERYD_CONCURRENCY = 5
    conf = app.conf
    assert (conf.broker_url, conf.task_always_eager) == ("memory://kw", True)
    assert (conf.task_default_queue, conf.worker_concurrency) == ("updated", 5)


def test_old_names_with_a_namespace(make, impl):
    settings = SimpleNamespace(
        CELERY_BROKER_URL="memory://prefixed", BROKER_URL="memory://old",
        CELERY_ALWAYS_EAGER=True, CELERYD_CONCURRENCY=2, CELERY_RESULT_BACKEND="memory://",
    )  # fmt: skip
    app = make("opts")
    app.config_from_object(settings, namespace="CELERY")
    conf = app.conf
    assert (conf.broker_url, conf.task_always_eager, conf.worker_concurrency) == (
        "memory://prefixed", True, 2,
    )  # fmt: skip
    assert conf.result_backend == "memory://"


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("CELERY_MESSAGE_COMPRESSION", "not-installed", "task_compression"),
        ("CELERYD_POOL", "eventlet", "worker_pool"),
        ("CELERY_TASK_SERIALIZER", "auth", "task_serializer"),
    ],
)
def test_old_names_of_unsupported_settings_raise(make_app, setting, value, message):
    app = make_app(broker=None, backend=None)
    app.config_from_object({"BROKER_URL": "memory://", setting: value})
    with pytest.raises(UnsupportedFeature, match=message):
        _ = app.engine


def test_old_names_match_celery():
    defaults = pytest.importorskip("celery.app.defaults")
    assert {old: defaults._TO_NEW_KEY.get(old) for old in OLD_NAMES} == OLD_NAMES


def test_legacy_routes_follow_the_same_matching_rules(make_app):
    app = make_app(
        task_routes={
            re.compile(r"old\..*"): {"queue": "legacy-q", "legacy": True},
            "old.kept": {"queue": "native-q"},
        }
    )

    assert is_legacy(app, "old.report")
    assert not is_legacy(app, "old.kept")  # the exact name first
    assert legacy_queues(app) == {"legacy-q"}
    app.send_task("new.task")  # a top-level mapping with a regex key publishes
    assert app.engine.broker.queue_lengths() == {"celery": 1}


PRIORITY_ROUTES = {"p.routed": {"queue": "celery", "priority": 7}, "p.*": {"priority": 2}}


@pytest.mark.filterwarnings(r"ignore:\s*The 'priority' task attribute")  # Celery 6 drops it
@pytest.mark.parametrize(
    ("name", "options", "task_priority", "expected"),
    [
        ("p.routed", {}, None, 7),  # the route's, when nothing else gives one
        ("p.other", {}, None, 2),
        ("p.routed", {"priority": 3}, None, 3),  # the call's first
        ("p.routed", {}, 5, 5),  # then the task's
    ],
)
def test_a_route_gives_the_priority_last(make, impl, name, options, task_priority, expected):
    app = make("opts", broker="memory://", task_routes=PRIORITY_ROUTES)

    def body():
        return None

    task = app.task(name=name, priority=task_priority)(body)
    if impl.name == "celery":
        preopts = {"priority": task.priority} if task.priority is not None else {}
        route = app.amqp.router.route({**preopts, **options}, name, (), {})
        assert route.get("priority") == expected
        return
    with mock.patch.object(app.engine, "schedule_jobs") as spy:
        task.apply_async(**options)
    ((jobs,), _) = spy.call_args
    assert jobs[0].meta["priority"] == expected
