"""The worker command's lifecycle signals, ``task_unknown`` and ``app.control`` in-process
(memory broker, the worker in a thread)."""

from __future__ import annotations

import logging
import threading

import pytest

from spinach_compat import signals
from spinach_compat.bin.celery import UsageError, find_app
from spinach_compat.exceptions import NotRegistered
from spinach_compat.worker import Worker, default_nodename

LIFECYCLE = ("celeryd_init", "setup_logging", "after_setup_logger", "after_setup_task_logger",
             "import_modules", "worker_init", "celeryd_after_setup", "worker_process_init",
             "worker_ready", "worker_shutting_down", "worker_process_shutdown",
             "worker_shutdown")  # fmt: skip


@pytest.fixture
def connect(recorder):
    """Connect recording receivers to signals; disconnected after the test."""
    connected = []

    def make_receiver(signal_name: str):
        def receiver(sender=None, signal=None, **kwargs):
            recorder.add(signal_name, sender, kwargs)

        return receiver

    def connect_(*names: str) -> None:
        for name in names:
            getattr(signals, name).connect(
                make_receiver(name), weak=False, dispatch_uid=f"t-{name}"
            )
            connected.append(name)

    yield connect_
    for name in connected:
        getattr(signals, name).disconnect(dispatch_uid=f"t-{name}")


def _run(worker: Worker, recorder) -> None:
    thread = threading.Thread(target=worker.start, name="test-worker")
    thread.start()
    try:
        recorder.wait_for(lambda events: any(e[0] == "worker_ready" for e in events))
    finally:
        worker.stop()
        thread.join()


def test_lifecycle_signals_in_order_with_celery_kwargs(app, recorder, connect, capsys):
    connect(*(name for name in LIFECYCLE if name != "setup_logging"))
    root_handlers = list(logging.getLogger().handlers)
    try:
        worker = Worker(app, hostname="w1@%h", concurrency=1, loglevel="info")
        _run(worker, recorder)
    finally:
        logging.getLogger().handlers[:] = root_handlers
    names = [e[0] for e in recorder.events]
    assert names == [n for n in LIFECYCLE if n != "setup_logging"]
    by_name = {e[0]: e for e in recorder.events}
    assert by_name["worker_ready"][1] is worker and by_name["worker_shutdown"][1] is worker
    assert by_name["after_setup_logger"][2]["loglevel"] == logging.INFO
    assert set(by_name["after_setup_logger"][2]) >= {"logger", "logfile", "format", "colorize"}
    shutting = by_name["worker_shutting_down"]
    assert shutting[1] == worker.hostname and shutting[2]["how"] == "Warm"
    assert worker.hostname.startswith("w1@")
    assert "[tasks]" in capsys.readouterr().out


def test_setup_logging_receiver_takes_over_logging(app, recorder, connect):
    connect("setup_logging", "after_setup_logger", "worker_ready")
    handlers = list(logging.getLogger().handlers)
    _run(Worker(app, concurrency=1, quiet=True), recorder)
    assert logging.getLogger().handlers == handlers
    assert [e[0] for e in recorder.events] == ["setup_logging", "worker_ready"]
    assert set(recorder.events[0][2]) == {"loglevel", "logfile", "format", "colorize"}


def test_task_received_and_task_unknown(app, run_worker, recorder, connect):
    connect("task_received", "task_unknown")

    @app.task
    def known():
        return 1

    run_worker()
    assert known.delay().get(timeout=15) == 1
    unknown_result = app.send_task("not.registered", args=[1])
    with pytest.raises(NotRegistered, match=r"not\.registered"):  # at once, as Celery's
        unknown_result.get(timeout=15)
    recorder.wait_for(lambda events: any(e[0] == "task_unknown" for e in events))
    received = recorder.named("task_received")
    assert received[0][2]["request"].task == known.name
    [(_, _, unknown)] = recorder.named("task_unknown")
    assert unknown["name"] == "not.registered" and type(unknown["exc"]).__name__ == "NotRegistered"
    assert [d.payload for d in app.engine.broker.list_dead_letters()]


def test_inspect_and_revoke_in_process(app):
    @app.task
    def slow():
        return 2

    app.start_worker(concurrency=2, block=False, nodename="n1@host")
    inspect = app.control.inspect()
    assert inspect.ping() == {"n1@host": {"ok": "pong"}}
    assert slow.name in inspect.registered()["n1@host"]
    assert inspect.stats()["n1@host"]["pool"]["max-concurrency"] == 2
    assert inspect.reserved() == {"n1@host": []}
    assert app.control.inspect(destination=["other@host"]).ping() is None
    later = slow.apply_async(countdown=3600)
    assert [t["request"]["id"] for t in inspect.scheduled()["n1@host"]] == [later.id]
    later.revoke()
    assert later.state == "REVOKED" and app.control.is_revoked(later.id)


def test_default_nodename_expands_like_celery():
    assert default_nodename().startswith("celery@")
    assert default_nodename("w1").startswith("w1@")
    assert default_nodename("w1@%h") == default_nodename("w1")


def test_find_app_like_celery():
    from tests.compat import proj

    assert find_app("tests.compat.proj") is proj.app
    assert find_app("tests.compat.proj.celery:app") is proj.app
    assert find_app("tests.compat.proj.celery") is proj.app
    with pytest.raises(UsageError, match="Unable to load"):
        find_app("tests.compat.nope")


def test_banner_hides_the_broker_password(make_app):
    app = make_app(broker="redis://user:s3cret@example.invalid:6379/0")
    banner = Worker(app, queues=["celery"], concurrency=2).banner()
    assert "s3cret" not in banner and "redis://user:**@example.invalid:6379/0" in banner


def test_a_revocation_from_another_process_is_read_within_the_refresh_interval(make_app, redis_url):
    from spinach.testing import FakeClock
    from spinach_compat.app.control import RevokedStore

    revoking = make_app(main="rev", broker=redis_url)
    working = make_app(main="rev", broker=redis_url)
    clock = FakeClock(start=1_000.0)
    worker_copy = RevokedStore(working, clock=clock)
    assert "job" not in worker_copy  # read now: nothing revoked

    revoking.control.revoke("job")

    assert "job" not in worker_copy  # its copy is still fresh
    clock.advance(RevokedStore.refresh_interval)
    assert "job" in worker_copy
    assert working.control.is_revoked("job")  # a new copy reads at once
