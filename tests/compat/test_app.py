"""The app: configuration, broker URLs, task registration and unsupported options."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from kombu.utils import json as kombu_json

import spinach_compat
from spinach import MemoryBroker
from spinach_compat import current_app, shared_task
from spinach_compat.app import codec
from spinach_compat.exceptions import ImproperlyConfigured, UnsupportedFeature


def test_defaults_match_celery(app):
    conf = app.conf
    assert conf.task_default_queue == "celery"
    assert conf.result_expires == timedelta(days=1)
    assert (conf.task_serializer, conf.enable_utc) == ("json", True)
    assert (conf.task_always_eager, conf.task_eager_propagates) == (False, False)
    conf.update(task_default_queue="other")
    assert conf["task_default_queue"] == "other"


def test_config_from_object_with_namespace(make_app):
    settings = SimpleNamespace(
        CELERY_BROKER_URL="memory://", CELERY_TASK_ALWAYS_EAGER=True, DEBUG=True,
        CELERY_RESULT_BACKEND="memory://",
    )  # fmt: skip
    app = make_app(broker=None, backend=None)
    app.config_from_object(settings, namespace="CELERY")
    assert (app.conf.broker_url, app.conf.task_always_eager) == ("memory://", True)
    assert "debug" not in app.conf


def test_config_from_module_path(make_app):
    app = make_app()
    app.config_from_object("tests.compat.settings_module")
    assert app.conf.task_default_queue == "from-module"


def test_broker_urls(make_app):
    assert isinstance(make_app().engine.broker, MemoryBroker)
    assert make_app(main="proj").engine.namespace == "proj"
    assert make_app(spinach_namespace="ns").engine.namespace == "ns"
    with pytest.raises(UnsupportedFeature, match="amqp"):
        _ = make_app(broker="amqp://guest@localhost//").engine
    with pytest.raises(ImproperlyConfigured):
        _ = make_app(broker=None).engine


def test_redis_broker_url(make_app, redis_url):
    from spinach.brokers.redis import RedisBroker

    assert isinstance(make_app(broker=redis_url).engine.broker, RedisBroker)


def test_unsupported_task_options_raise(app):
    with pytest.raises(UnsupportedFeature, match=r"shadow_name.*migration_guide"):

        @app.task(shadow_name="other")
        def shadowed():
            pass

    @app.task
    def plain():
        pass

    with pytest.raises(UnsupportedFeature, match="chord"):
        plain.apply_async(chord=plain.s())
    with pytest.raises(UnsupportedFeature, match="made_up"):
        plain.apply_async(made_up=1)


def test_unsupported_settings_raise(make_app):
    app = make_app(task_compression="not-installed")
    with pytest.raises(UnsupportedFeature, match="task_compression"):
        _ = app.engine


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("accept_content", ["json", "auth"], "message signing"),
        ("task_reject_on_worker_lost", False, "always run again"),
        ("worker_pool", "eventlet", "use prefork"),
    ],
)
def test_settings_asking_for_another_behaviour_raise(make_app, setting, value, message):
    app = make_app(**{setting: value})
    with pytest.raises(UnsupportedFeature, match=message):
        _ = app.engine


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("accept_content", ["json", "pickle"]),  # we only ever send JSON: nothing unpickled
        ("task_reject_on_worker_lost", True),
        ("worker_pool", "threads"),
        ("worker_pool", "prefork"),
    ],
)
def test_settings_matching_the_engine_are_accepted(make_app, setting, value):
    assert make_app(**{setting: value}).engine is not None


def test_task_decorator_forms_and_current_app(app):
    @app.task
    def bare():
        return 1

    @app.task(name="custom.name", queue="q")
    def named():
        return 2

    assert bare.name == f"{__name__}.bare"
    assert (named.name, named.queue) == ("custom.name", "q")
    assert app.tasks["custom.name"] is named
    assert current_app._get_current_object() is app
    assert (bare.max_retries, bare.default_retry_delay) == (3, 180)


def test_shared_task_binds_to_the_current_app(make_app):
    @shared_task
    def shared(x):
        return x * 2

    app = make_app(task_always_eager=True)
    assert shared.delay(4).get() == 8
    assert shared.name in app.tasks


def test_package_layout_mirrors_celery():
    from spinach_compat.app.task import Task
    from spinach_compat.result import AsyncResult, EagerResult  # noqa: F401
    from spinach_compat.utils.log import get_task_logger

    assert spinach_compat.Task is Task
    assert get_task_logger("proj.tasks").parent.name == "celery.task"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        ((1, "a", None, 2.5, True), {"k": [1, {"x": "y"}]}),
        (((1, 2),), {"when": datetime(2030, 1, 2, 3, 4, 5)}),
        (([("t", 1)],), {"d": Decimal("1.50")}),
        (({1: "int key"},), {}),
    ],
)
def test_encoded_arguments_are_what_json_carries(args, kwargs):
    expected = json.loads(kombu_json.dumps([list(args), kwargs]))
    assert list(codec.encode(args, kwargs)[:2]) == expected
