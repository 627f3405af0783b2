"""The queues a worker consumes: Celery's task_queues, else task_default_queue; -Q, -X."""

from __future__ import annotations

import sys

import pytest
from kombu import Queue

from spinach_compat.bin.celery import EXIT_USAGE, main
from spinach_compat.exceptions import ImproperlyConfigured, UnsupportedFeature
from spinach_compat.worker.queues import declared_queues, worker_queues

from .conftest import WAIT

BAND = "\x06\x163"  # the native queue of priorities 3 to 5 of a queue (see app.priority)


def _routed_app(make_app, **conf):
    """An app with a task routed to ``emails`` and one on the default queue."""
    app = make_app(task_routes={"send": {"queue": "emails"}}, **conf)
    app.task(name="send")(lambda: "sent")
    app.task(name="ping")(lambda: "pong")
    return app


def _consumed(app) -> set[str]:
    [info] = app.engine.broker.workers()
    return set(info.queues)


def test_without_queues_a_routed_queue_not_declared_is_left_alone(make_app):
    app = _routed_app(make_app)
    sent = app.tasks["send"].delay()
    app.start_worker(concurrency=1, block=False)
    assert app.tasks["ping"].delay().get(timeout=WAIT) == "pong"
    assert "emails" not in _consumed(app) and "celery" in _consumed(app)
    assert app.engine.broker.queue_lengths().get("emails") == 1
    assert sent.state == "PENDING"


def test_purge_without_queues_leaves_a_routed_queue_alone(make_app):
    """As Celery's purge: the queues a worker consumes by default, not routed ones."""
    app = _routed_app(make_app)
    app.tasks["send"].delay()
    app.tasks["ping"].delay()
    assert app.control.purge() == 1
    assert app.engine.broker.queue_lengths().get("emails") == 1
    assert app.control.purge(queues=["emails"]) == 1


def test_purge_refuses_a_connection_to_another_broker(make_app):
    app = _routed_app(make_app)
    assert app.control.purge(connection=app.connection_for_write()) == 0
    with pytest.raises(UnsupportedFeature, match="another broker"):
        app.control.purge(connection=app.connection_for_write("redis://127.0.0.1:1/0"))


def test_a_worker_given_the_queue_runs_it(make_app):
    app = _routed_app(make_app)
    sent = app.tasks["send"].delay()
    app.start_worker(concurrency=1, queues=["emails"], block=False)
    assert sent.get(timeout=WAIT) == "sent"
    assert _consumed(app) == {"emails", *(f"emails\x06\x16{s}" for s in (3, 6, 9))}


def test_declared_queues_are_consumed_with_their_priority_bands(make_app):
    app = _routed_app(make_app, task_queues=[Queue("emails"), Queue("celery")])
    sent = app.tasks["send"].apply_async(priority=4)
    app.start_worker(concurrency=1, block=False)
    assert sent.get(timeout=WAIT) == "sent"
    assert {"emails", f"emails{BAND}", "celery", f"celery{BAND}"} <= _consumed(app)


def test_declared_queues_as_celery_takes_them(make_app):
    assert declared_queues(make_app()) == ["celery"]
    assert declared_queues(make_app(task_default_queue="main")) == ["main"]
    queues = [Queue("a"), Queue("b"), Queue("a")]
    assert declared_queues(make_app(task_queues=queues)) == ["a", "b"]  # not the default
    assert declared_queues(make_app(task_queues={"x": {}, "y": {}})) == ["x", "y"]
    assert declared_queues(make_app(task_queues=("n",))) == ["n"]


def test_include_and_exclude(make_app):
    app = make_app(task_queues=[Queue("a"), Queue("b")])
    assert worker_queues(app) == ["a", "b"]
    assert worker_queues(app, ["b", "new"]) == ["b", "new"]  # created when missing
    assert worker_queues(app, exclude=["a"]) == ["b"]
    assert worker_queues(app, ["new", "b"], exclude=["b"]) == ["new"]


def test_missing_queues_refused_without_task_create_missing_queues(make_app):
    app = make_app(task_queues=[Queue("a")], task_create_missing_queues=False)
    assert worker_queues(app, ["a"]) == ["a"]
    with pytest.raises(ImproperlyConfigured, match="queue 'nope' isn't defined in the"):
        worker_queues(app, ["a", "nope"])


def test_the_command_line_refuses_a_missing_queue(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "queuesapp.py").write_text(
        "from spinach_compat import Celery\n"
        "app = Celery('queuesapp', broker='memory://', set_as_current=False)\n"
        "app.conf.task_create_missing_queues = False\n"
    )
    monkeypatch.delitem(sys.modules, "queuesapp", raising=False)  # forgotten after the test
    assert main(["-A", "queuesapp", "worker", "-Q", "celery,other"]) == EXIT_USAGE
    assert "queue 'other' isn't defined in the `task_queues` setting" in capsys.readouterr().err


def test_a_kombu_queue_given_to_apply_async_is_its_name(make_app):
    """Celery takes ``queue=Queue("emails")`` as the queue named emails."""
    app = _routed_app(make_app)
    sent = app.tasks["ping"].apply_async(queue=Queue("emails"))
    assert app.engine.broker.queue_lengths().get("emails") == 1
    app.start_worker(concurrency=1, queues=["emails"], block=False)
    assert sent.get(timeout=WAIT) == "pong"
