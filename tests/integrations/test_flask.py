"""The Flask integration against real Flask: app factory, app contexts, ``flask spinach``."""

from __future__ import annotations

import threading

import pytest

flask = pytest.importorskip("flask")

from spinach import MemoryBroker, Tasks  # noqa: E402
from spinach.contrib.flask import EagerEngine, Spinach  # noqa: E402
from spinach.job import JobStatus  # noqa: E402

tasks = Tasks()
seen: list[tuple[str, str]] = []  # (current_app.name, the job's argument)
seen_lock = threading.Lock()


@tasks.task(name="whoami")
def whoami(label: str) -> None:
    with seen_lock:
        seen.append((flask.current_app.config["LABEL"], label))


@tasks.task(name="explode")
def explode() -> None:
    raise ValueError(f"boom in {flask.current_app.name}")


spinach = Spinach()


def create_app(name: str, **config: object) -> flask.Flask:
    """The app factory of the tests: one extension object, one engine per app."""
    app = flask.Flask(name)
    app.config.update(LABEL=name, **config)
    spinach.init_app(app)
    spinach.register_tasks(app, tasks)
    return app


@pytest.fixture(autouse=True)
def clear_seen():
    seen.clear()
    yield
    seen.clear()


def test_two_apps_two_namespaces_one_redis_each_job_in_its_app(redis_url):
    first = create_app("first", SPINACH_BROKER=redis_url)
    second = create_app("second", SPINACH_BROKER=redis_url)
    first.extensions["spinach"].broker.flush()
    second.extensions["spinach"].broker.flush()
    with first.app_context():
        spinach.schedule(whoami, "a")
    with second.app_context():
        spinach.schedule(whoami, "b")
        spinach.schedule(whoami, "c")
    # the registry was attached to second last: it schedules there
    tasks.schedule(whoami, "d")
    first.extensions["spinach"].start_workers(number=2, stop_when_queue_empty=True)
    assert seen == [("first", "a")]
    second.extensions["spinach"].start_workers(number=2, stop_when_queue_empty=True)
    assert sorted(seen) == [("first", "a"), ("second", "b"), ("second", "c"), ("second", "d")]
    assert first.config["SPINACH_NAMESPACE"] == "first"


def test_flask_spinach_command_runs_the_jobs(redis_url):
    app = create_app("cli", SPINACH_BROKER=redis_url, SPINACH_NAMESPACE="cli-ns")
    engine = app.extensions["spinach"]
    engine.broker.flush()
    engine.schedule(whoami, "from-cli")
    result = app.test_cli_runner().invoke(
        args=["spinach", "--threads", "2", "--stop-when-queue-empty"]
    )
    assert result.exit_code == 0, result.output
    assert seen == [("cli", "from-cli")]
    assert engine.namespace == "cli-ns"


def test_flask_spinach_command_refuses_a_bad_thread_count():
    app = create_app("badcli", SPINACH_BROKER="memory://")
    result = app.test_cli_runner().invoke(args=["spinach", "--threads", "0"])
    assert result.exit_code == 2
    assert "--threads" in result.output


def test_each_job_gets_a_fresh_app_context_popped_after_it():
    app = create_app("popped", SPINACH_BROKER=MemoryBroker())
    engine = app.extensions["spinach"]
    found: list[object] = []
    local = Tasks()  # not the module's registry: other tests' engines need not see it

    @local.task(name="mark")
    def mark(label: str) -> None:
        found.append(flask.g.get("left_by"))  # a context left over would still hold it
        flask.g.left_by = label

    engine.attach_tasks(local)
    for label in ("first", "second", "third"):
        engine.schedule(mark, label)
    engine.start_workers(number=1, stop_when_queue_empty=True)  # one thread: each in turn
    assert found == [None, None, None]


def test_eager_mode_runs_jobs_at_once_inside_the_app_context():
    app = create_app("eager", SPINACH_BROKER="memory://", SPINACH_EAGER=True)
    engine = app.extensions["spinach"]
    assert isinstance(engine, EagerEngine)
    job = engine.schedule(whoami, "now")
    assert seen == [("eager", "now")]
    assert job.status is JobStatus.SUCCEEDED
    with pytest.raises(ValueError, match="boom in eager"):
        engine.schedule(explode)
    assert not flask.has_app_context()
    assert engine.broker.queue_lengths() == {}


def test_subclass_callbacks_run_inside_the_app_context():
    calls = []

    class Recording(Spinach):
        def job_started(self, *args, job=None, **kwargs):
            calls.append(("started", flask.current_app.name, job.task_name))

        def job_failed(self, *args, job=None, err=None, **kwargs):
            calls.append(("failed", flask.current_app.name, type(err).__name__))

    app = flask.Flask("callbacks")
    app.config.update(SPINACH_BROKER="memory://")
    extension = Recording(app)
    extension.spin.attach_tasks(tasks)
    extension.schedule(explode)
    extension.spin.start_workers(number=1, stop_when_queue_empty=True)
    assert calls == [("started", "callbacks", "explode"), ("failed", "callbacks", "ValueError")]


def test_an_app_without_spinach_broker_is_refused_naming_the_setting():
    app = flask.Flask("nobroker")
    with pytest.raises(
        ValueError, match=r"SPINACH_BROKER is not set in the config of Flask app 'nobroker'"
    ):
        Spinach(app)
    assert "spinach" not in app.extensions


def test_an_unknown_broker_scheme_is_refused_naming_it():
    app = flask.Flask("badscheme")
    app.config["SPINACH_BROKER"] = "amqp://guest@localhost//"
    with pytest.raises(ValueError, match=r"SPINACH_BROKER .* unknown URL scheme 'amqp'"):
        Spinach(app)


def test_one_broker_object_for_two_namespaces_is_refused():
    broker = MemoryBroker()
    create_app("owner", SPINACH_BROKER=broker)
    create_app("owner", SPINACH_BROKER=broker)  # the same namespace again: fine
    with pytest.raises(ValueError, match="already serving namespace 'owner', not 'thief'"):
        create_app("thief", SPINACH_BROKER=broker)


def test_spin_outside_an_app_context_says_what_to_do():
    with pytest.raises(RuntimeError, match="inside an app context"):
        _ = Spinach().spin
    app = flask.Flask("uninitialized")
    with app.app_context(), pytest.raises(RuntimeError, match="init_app"):
        _ = Spinach().spin


def test_the_upstream_module_name_is_the_same_extension():
    from spinach.contrib.flask_spinach import Spinach as upstream_named

    assert upstream_named is Spinach
