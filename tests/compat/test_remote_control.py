"""Celery's remote control on in-process facade workers (``memory://``): the commands, the
replies' shapes, custom commands, addressing, and the thread's start and stop."""

from __future__ import annotations

import json
import threading

import pytest
from kombu import Connection
from kombu.exceptions import ChannelError

import spinach_compat
from spinach_compat.bin.celery import main
from spinach_compat.worker import control as worker_control
from spinach_compat.worker.autoscale import Autoscaler, Bounds
from spinach_compat.worker.consumer import (
    OVERRIDES_VARIABLE,
    PreforkConsumer,
    TaskTotals,
    apply_overrides,
)
from spinach_compat.worker.control import Panel, control_command, inspect_command

from ..helpers import wait_until
from .conftest import WAIT

#: An app for the command line run in this process, with an in-process worker.
cli_app = spinach_compat.Celery("cli", broker="memory://", backend="memory://",
                                set_as_current=False)  # fmt: skip


@pytest.fixture
def custom_commands():
    """Register test commands in the global Panel; removed at teardown."""
    before = dict(Panel.data), dict(Panel.meta)
    yield
    Panel.data.clear(), Panel.meta.clear()
    Panel.data.update(before[0]), Panel.meta.update(before[1])


def _node(make_app, name: str, **conf):
    app = make_app(**conf)

    @app.task(name="add")
    def add(a, b):
        return a + b

    app.start_worker(concurrency=2, block=False, nodename=name)
    return app


def test_ping_stats_registered_and_totals(make_app):
    app = _node(make_app, "n1@host")
    assert app.control.ping() == [{"n1@host": {"ok": "pong"}}]
    results = [app.tasks["add"].delay(i, i) for i in range(3)]
    assert [r.get(timeout=WAIT) for r in results] == [0, 2, 4]
    inspect = app.control.inspect()
    stats = inspect.stats()["n1@host"]
    assert stats["total"] == {"add": 3}
    assert {"pid", "clock", "uptime", "pool", "broker", "prefetch_count", "rusage"} <= set(stats)
    assert stats["pool"]["max-concurrency"] == 2 and stats["broker"]["transport"] == "memory"
    assert stats["prefetch_count"] == 8  # worker_prefetch_multiplier (4) times 2, as Celery's
    assert "add" in inspect.registered()["n1@host"]  # with other tests' @shared_task ones
    assert [q["name"] for q in inspect.active_queues()["n1@host"]] == ["celery"]
    assert inspect.reserved() == {"n1@host": []} and inspect.active() == {"n1@host": []}


def test_a_single_destination_gives_its_reply_alone(make_app):
    app = _node(make_app, "n1@host")
    assert app.control.inspect(destination="n1@host").ping() == {"ok": "pong"}
    assert app.control.inspect(destination=["other@host"], timeout=0.1).ping() is None


def test_destination_and_pattern_limit_who_answers(make_app):
    first = _node(make_app, "a@host")
    _node(make_app, "b@host")
    pinged = first.control.inspect(limit=2).ping()
    assert pinged == {"a@host": {"ok": "pong"}, "b@host": {"ok": "pong"}}
    assert first.control.inspect(["b@host"]).ping() == {"b@host": {"ok": "pong"}}
    by_pattern = first.control.inspect(pattern="a@.*", matcher="pcre", limit=1).ping()
    assert by_pattern == {"a@host": {"ok": "pong"}}


@pytest.mark.parametrize("broker", ["memory", "redis"])
def test_another_control_exchange_does_not_answer(make_app, broker, request):
    url = "memory://" if broker == "memory" else request.getfixturevalue("redis_url")
    ours = _node(make_app, "ours@host", control_exchange="ours", broker=url, backend=url)
    _node(make_app, "theirs@host", control_exchange="theirs", broker=url, backend=url)
    assert ours.control.inspect(timeout=0.3, limit=5).ping() == {"ours@host": {"ok": "pong"}}


def test_unknown_and_refused_commands_reply_errors(make_app):
    app = _node(make_app, "n1@host")
    assert app.control.broadcast("nonesuch", reply=True) == [
        {"n1@host": {"error": "KeyError('nonesuch')"}}
    ]
    [grow] = app.control.pool_grow(2, reply=True)
    assert "not supported by the threads pool" in grow["n1@host"]["error"]
    [events] = app.control.broadcast("enable_events", reply=True)
    assert events == {"n1@host": {"error": "event dispatcher unavailable"}}  # as Celery's
    assert "error" in app.control.inspect().memdump()["n1@host"]


def test_rate_and_time_limits_change_the_nodes_task(make_app):
    app = _node(make_app, "n1@host")
    task = app.tasks["add"]
    ok = app.control.rate_limit("add", "10/m", reply=True)
    assert ok == [{"n1@host": {"ok": "new rate limit set successfully"}}]
    assert task.rate_limit == "10/m"
    [bad] = app.control.rate_limit("add", "ten", reply=True)
    assert bad["n1@host"]["error"].startswith("Invalid rate limit string")
    limits = app.control.time_limit("add", soft=5, hard=10, reply=True)
    assert limits == [{"n1@host": {"ok": "time limits set successfully"}}]
    assert (task.soft_time_limit, task.time_limit) == (5, 10)
    assert app.control.time_limit("nope", reply=True) == [{"n1@host": {"error": "unknown task"}}]


def test_add_consumer_makes_the_worker_take_a_new_queue(make_app):
    app = _node(make_app, "n1@host")
    waiting = app.tasks["add"].apply_async((1, 2), queue="extra")
    assert app.control.add_consumer("extra", reply=True) == [
        {"n1@host": {"ok": "add consumer extra"}}
    ]
    assert waiting.get(timeout=WAIT) == 3
    queues = [q["name"] for q in app.control.inspect().active_queues()["n1@host"]]
    assert queues == ["celery", "extra"]
    app.control.cancel_consumer("celery", reply=True)
    assert [q["name"] for q in app.control.inspect().active_queues()["n1@host"]] == ["extra"]


def test_custom_commands_answer_and_a_raising_one_replies_its_error(make_app, custom_commands):
    @inspect_command()
    def current_queues(state):
        """The queues this node consumes."""
        return {"ok": state.consumer.queues(), "node": state.hostname}

    @control_command(args=[("n", int)], signature="[N=1]")
    def explode(state, n=1):
        raise RuntimeError(f"exploded {n}")

    app = _node(make_app, "n1@host")
    assert app.control.broadcast("current_queues", reply=True) == [
        {"n1@host": {"ok": ["celery"], "node": "n1@host"}}
    ]
    assert app.control.broadcast("explode", {"n": 3}, reply=True) == [
        {"n1@host": {"error": "RuntimeError('exploded 3')"}}
    ]
    assert app.tasks["add"].delay(2, 2).get(timeout=WAIT) == 4  # the worker still runs
    assert Panel.meta["explode"].signature == "[N=1]"


def test_celery_worker_control_is_this_module():
    import spinach_compat.shim  # noqa: F401

    assert worker_control.Panel is Panel
    assert Panel.meta["pool_grow"].args == [("n", int)]
    assert Panel.data["dump_tasks"] is Panel.data["registered"]


def test_shutdown_stops_the_in_process_worker_without_a_reply(make_app):
    app = _node(make_app, "n1@host")
    assert app.control.broadcast("shutdown", reply=True, timeout=0.3) == []
    assert wait_until(lambda: not any(t.name.startswith("pidbox-") for t in threading.enumerate()))
    assert app.control.inspect(timeout=0.2).ping() is None


def test_the_mailbox_thread_stops_with_the_worker(make_app):
    app = _node(make_app, "n1@host")
    assert any(t.name == "pidbox-n1@host" for t in threading.enumerate())
    app.stop_worker()
    assert not any(t.name == "pidbox-n1@host" for t in threading.enumerate())


def test_a_stopped_node_deletes_its_mailbox_queue(make_app):
    app = _node(make_app, "gone@host")
    name = "gone@host.celery.pidbox"
    with Connection("memory://") as conn:
        assert conn.default_channel.queue_declare(name, passive=True).queue == name
        app.stop_worker()
        with pytest.raises(ChannelError):
            conn.default_channel.queue_declare(name, passive=True)
        app.control.broadcast("shutdown")  # unbound too: nothing keeps it for a later node
        with pytest.raises(ChannelError):
            conn.channel().queue_declare(name, passive=True)


def test_remote_control_can_be_disabled(make_app):
    app = _node(make_app, "n1@host", worker_enable_remote_control=False)
    assert not any(t.name == "pidbox-n1@host" for t in threading.enumerate())
    assert app.control.inspect(timeout=0.2).ping() is None


def test_revoke_replies_and_is_stored_for_later_workers(make_app):
    app = _node(make_app, "n1@host")
    replies = app.control.revoke("some-id", reply=True)
    assert replies == [{"n1@host": {"ok": "tasks {'some-id'} flagged as revoked"}}]
    assert app.control.is_revoked("some-id")
    assert app.control.inspect().revoked() == {"n1@host": ["some-id"]}


@pytest.fixture
def cli_worker():
    cli_app.start_worker(concurrency=1, block=False, nodename="cli@host")
    yield cli_app
    cli_app.stop_worker()


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["-A", f"{__name__}:cli_app", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_prints_replies_as_celerys(capsys, cli_worker):
    status, out, _ = _cli(capsys, "inspect", "ping")
    assert (status, out) == (0, "->  cli@host: OK\n        pong\n\n1 node online.\n")
    status, out, _ = _cli(capsys, "control", "rate_limit", "nope", "1/s")
    assert (status, out) == (0, "->  cli@host: ERROR\n        unknown task\n")
    status, out, _ = _cli(capsys, "inspect", "--json", "query_task", "a", "b")
    assert (status, out) == (0, '{"cli@host": {}}\n')
    status, _, err = _cli(capsys, "inspect", "ping", "-d", "nobody@host", "-t", "0.1")
    assert status == 69 and "No nodes replied within time constraint" in err


def test_cli_usage_errors_and_list(capsys):
    status, _, err = _cli(capsys, "control", "pool_grow", "two")
    assert status == 2 and "pool_grow" in err
    status, _, err = _cli(capsys, "inspect", "pool_grow")
    assert status == 2 and "Available inspect commands:" in err
    status, _, err = _cli(capsys, "inspect")
    assert status == 2 and "Missing argument 'COMMAND'" in err
    status, out, _ = _cli(capsys, "control", "--list")
    assert status == 0 and "pool_grow [N=1]" in out and "add_consumer" in out


def test_a_prefork_child_applies_its_parents_changes(make_app, monkeypatch):
    app = make_app()

    @app.task(name="add")
    def add(a, b):
        return a + b

    changes = {"queues": ["extra"], "rate_limits": {"add": "1/s"}, "time_limits": {"add": [1, 2]}}
    monkeypatch.setenv(OVERRIDES_VARIABLE, json.dumps(changes))
    assert apply_overrides(app, ["celery"]) == ["extra"]
    assert add.rate_limit == "1/s" and (add.soft_time_limit, add.time_limit) == (1, 2)
    monkeypatch.delenv(OVERRIDES_VARIABLE)
    assert apply_overrides(app, ["celery"]) == ["celery"]


def test_prefork_autoscale_commands(make_app):
    app = make_app()
    scaler = Autoscaler(Bounds(4, 1), waiting=lambda: 0)
    totals = TaskTotals(app, "p@host", shared_by=1)
    node = PreforkConsumer(app, "p@host", ["celery"], totals, scaler)
    assert node.autoscale(6, 2) == {"ok": "autoscale now max=6 min=2"}
    assert scaler.bounds == Bounds(6, 2)
    assert node.grow(1) == {
        "error": "pool_grow is not supported with autoscale. Adjust autoscale range instead."
    }
    without = PreforkConsumer(app, "p@host", ["celery"], totals)
    with pytest.raises(ValueError, match="Autoscale not enabled"):
        without.autoscale(2, 1)
