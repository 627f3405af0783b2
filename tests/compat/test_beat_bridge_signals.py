"""Crontab entries of legacy tasks sent once, the ``--celery-queues`` bridge failing loudly,
dead signal receivers forgotten and the worker's pidfile removed at exit."""

from __future__ import annotations

import gc
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis

from spinach_compat import _state, signals
from spinach_compat.app import beat
from spinach_compat.app.engine import compat_engine
from spinach_compat.bin.celery import EXIT_OK, EXIT_USAGE, main
from spinach_compat.interop import legacy
from spinach_compat.interop.bridge import CeleryBridge
from spinach_compat.schedules import crontab

from .conftest import WAIT

UTC = timezone.utc
NOW = datetime(2030, 3, 1, 23, 58, 10, tzinfo=UTC)  # injected: the tickers' clock
LEGACY_ROUTES = {"cron.legacy": {"queue": "legacy", "legacy": True}}
ENTRIES = {"minutely": {"task": "cron.legacy", "schedule": crontab(), "args": (1,)}}

_names = itertools.count()


@pytest.fixture
def rclient(redis_url) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _legacy_cron_app(make_app, **conf):
    app = make_app(f"legacycron{next(_names)}", task_routes=LEGACY_ROUTES, **conf)
    app.conf.beat_schedule = ENTRIES
    return app


def _ticker(app) -> Callable[[datetime], None]:
    assert beat.CRONTAB_TICKER in app.register_beat_schedule()
    return app._native.get(beat.CRONTAB_TICKER).func


def _celery_messages(rclient: redis.Redis, queue: str) -> list[tuple[str, str]]:
    """(task id, eta) of the Celery messages on ``queue``, oldest first."""
    headers = [json.loads(raw)["headers"] for raw in reversed(rclient.lrange(queue, 0, -1))]
    return [(h["id"], h["eta"]) for h in headers]


def _minutes(*offsets: int) -> list[datetime]:
    return [datetime(2030, 3, 2, tzinfo=UTC) + timedelta(minutes=m) for m in offsets]


# -- beat: a legacy occurrence is published once ---------------------------------------------


def test_legacy_occurrence_published_once_across_ticks_and_beats(make_app, redis_url, rclient):
    """Two workers' tickers, overlapping windows: one Celery message per occurrence."""
    first = _legacy_cron_app(make_app, broker=redis_url, backend=redis_url)
    second = _legacy_cron_app(
        make_app, broker=redis_url, backend=redis_url, spinach_namespace=first.namespace
    )
    ticks = [(first, 0), (second, 7), (first, 30), (second, 60), (first, 60), (second, 61)]
    for app, seconds in ticks:
        _ticker(app)(NOW + timedelta(seconds=seconds))
    expected = [(beat.occurrence_id("minutely", at), at.isoformat()) for at in _minutes(-1, 0, 1)]
    assert _celery_messages(rclient, "legacy") == expected
    assert first.engine.broker.scheduled_jobs() == []  # no native job for Celery workers
    claims = rclient.keys(first.engine.broker.key("celery_beat/legacy_claims/*"))
    assert len(claims) == 3
    longest = (2 * beat.CRONTAB_TICK + beat.LEGACY_CLAIM_MARGIN).total_seconds() * 1000
    assert all(0 < rclient.pttl(key) <= longest for key in claims)  # claims expire


def test_a_failed_legacy_send_is_sent_by_the_next_tick(make_app, redis_url, rclient, monkeypatch):
    app = _legacy_cron_app(make_app, broker=redis_url, backend=redis_url)
    send, calls = legacy.send, []

    def failing_once(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 1:
            raise ConnectionError("broker down")
        return send(*args, **kwargs)

    monkeypatch.setattr(legacy, "send", failing_once)
    tick = _ticker(app)
    with pytest.raises(ConnectionError):
        tick(NOW)
    tick(NOW + timedelta(seconds=20))
    expected = [(beat.occurrence_id("minutely", at), at.isoformat()) for at in _minutes(-1, 0)]
    assert _celery_messages(rclient, "legacy") == expected
    assert calls[0] == calls[1] == expected[0][0]  # the failed one, sent again


def test_legacy_occurrence_once_on_memory_broker_peers(make_app, recorder):
    first = _legacy_cron_app(make_app)
    second = _legacy_cron_app(make_app, spinach_namespace=first.namespace)
    second._engine = compat_engine(first.engine.broker.peer(), first.namespace)
    second._engine.attach_tasks(second._native)

    def on_publish(sender=None, headers=None, **kwargs):
        recorder.add("published", headers["id"])

    signals.before_task_publish.connect(on_publish, weak=False)
    try:
        for app, seconds in [(first, 0), (second, 5), (first, 40), (second, 40)]:
            _ticker(app)(NOW + timedelta(seconds=seconds))
    finally:
        signals.before_task_publish.disconnect(on_publish)
    ids = [beat.occurrence_id("minutely", at) for at in _minutes(-1, 0)]
    assert recorder.named("published") == [("published", task_id) for task_id in ids]


# -- the --celery-queues bridge ---------------------------------------------------------------


@pytest.fixture
def cli_app(tmp_path, monkeypatch) -> Iterator[Callable[[str], str]]:
    """Write an app module for ``main(["-A", name, ...])``; forgotten after the test."""
    names: list[str] = []
    previous = _state._current_app
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(broker: str) -> str:
        name = f"bridgeapp{next(_names)}"
        (tmp_path / f"{name}.py").write_text(
            "from spinach_compat import Celery\n"
            f"app = Celery({name!r}, broker={broker!r}, backend={broker!r})\n"
            "app.conf.worker_hijack_root_logger = False\n"
            "@app.task(name='interop.add')\n"
            "def add(a, b):\n"
            "    return a + b\n"
        )
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)
    _state._current_app = previous


@pytest.fixture
def on_ready(recorder) -> Iterator[None]:
    """Record ``worker_ready`` and stop that worker at once (so an old worker never hangs)."""

    def receiver(sender=None, **kwargs):
        recorder.add("ready", sender)
        sender.stop()

    signals.worker_ready.connect(receiver, weak=False, dispatch_uid="test-on-ready")
    yield
    signals.worker_ready.disconnect(dispatch_uid="test-on-ready")


def test_bridging_with_a_memory_broker_is_a_usage_error(cli_app, on_ready, recorder, capsys):
    name = cli_app("memory://")
    assert main(["-A", name, "-q", "worker", "-c", "1", "--celery-queues", "celery"]) == EXIT_USAGE
    assert "needs a Redis broker, not memory://" in capsys.readouterr().err
    assert recorder.named("ready") == []


def test_a_bridge_that_fails_to_start_stops_the_worker_start(
    cli_app, on_ready, recorder, redis_url, tmp_path, monkeypatch
):
    def broken_start(self):
        raise RuntimeError("no bridge thread")

    monkeypatch.setattr(CeleryBridge, "start", broken_start)
    pidfile = tmp_path / "worker.pid"
    args = ["-A", cli_app(redis_url), "-q", "worker", "-P", "threads", "-c", "1",
            "--celery-queues", "celery"]  # fmt: skip
    with pytest.raises(RuntimeError, match="no bridge thread"):
        main([*args, "--pidfile", str(pidfile)])
    assert recorder.named("ready") == []  # never claimed to be ready
    assert not pidfile.exists()


def test_the_bridge_runs_from_worker_ready_to_shutdown(cli_app, redis_url, recorder, rclient):
    celery = pytest.importorskip("celery")
    client = celery.Celery("client", broker=redis_url, backend=redis_url, set_as_current=False)
    bridges: list[bool] = []

    def receiver(sender=None, **kwargs):
        bridges.append(any(t.name == "celery-bridge" for t in threading.enumerate()))
        recorder.add("ready", sender)

    signals.worker_ready.connect(receiver, weak=False, dispatch_uid="test-bridge-ready")
    args = ["-A", cli_app(redis_url), "-q", "worker", "-P", "threads", "-c", "1",
            "--celery-queues", "celery"]  # fmt: skip
    statuses: list[int] = []
    thread = threading.Thread(target=lambda: statuses.append(main(args)), name="test-cli")
    thread.start()
    try:
        recorder.wait_for(lambda events: bool(events))
        assert client.send_task("interop.add", args=(2, 3)).get(timeout=WAIT) == 5
    finally:
        signals.worker_ready.disconnect(dispatch_uid="test-bridge-ready")
        for event in recorder.named("ready"):
            event[1].stop()
        thread.join(WAIT)
        client.close()
    assert statuses == [EXIT_OK] and bridges == [True]


# -- the worker's pidfile -----------------------------------------------------------------


def run_worker_with_pidfile(app: str, pidfile: Path, when_ready: Callable[[], None]) -> int:
    """Run a worker of ``app`` with ``--pidfile`` until ready, then ``when_ready()``, stop."""

    def receiver(sender=None, **kwargs):
        when_ready()
        sender.stop()

    signals.worker_ready.connect(receiver, weak=False, dispatch_uid="test-pidfile")
    try:
        return main(["-A", app, "-q", "worker", "-c", "1", "--pidfile", str(pidfile)])
    finally:
        signals.worker_ready.disconnect(dispatch_uid="test-pidfile")


def test_pidfile_written_while_running_and_removed_at_exit(cli_app, tmp_path, recorder):
    pidfile = tmp_path / "worker.pid"
    seen: list[str] = []

    status = run_worker_with_pidfile(
        cli_app("memory://"), pidfile, lambda: seen.append(pidfile.read_text())
    )

    assert (status, seen) == (EXIT_OK, [f"{os.getpid()}\n"])
    assert not pidfile.exists()


def test_a_pidfile_another_process_rewrote_is_left(cli_app, tmp_path: Path):
    pidfile = tmp_path / "worker.pid"
    taken_over = "999999\n"  # another worker took the file over

    run_worker_with_pidfile(cli_app("memory://"), pidfile, lambda: pidfile.write_text(taken_over))

    assert pidfile.read_text() == taken_over


# -- signals: a dead receiver never blocks a new one ----------------------------------------


def _receiver(calls: list, tag: object) -> Callable[..., None]:
    def receiver(sender=None, **kwargs):
        calls.append(tag)

    return receiver


def test_a_dead_receivers_dispatch_uid_connects_a_new_one(impl):
    signal, calls = impl.signals.Signal(name="test"), []
    first = _receiver(calls, "first")
    signal.connect(first, dispatch_uid="uid")
    del first
    gc.collect()
    signal.connect(_receiver(calls, "unreferenced"), dispatch_uid="uid")  # weak: dies at once
    second = _receiver(calls, "second")
    signal.connect(second, dispatch_uid="uid")
    signal.send(sender=None)
    assert calls == ["second"]
    signal.connect(_receiver(calls, "duplicate"), weak=False, dispatch_uid="uid")
    signal.send(sender=None)
    assert calls == ["second", "second"]  # a live receiver keeps its uid


def test_a_receiver_at_a_dead_ones_address_connects(impl):
    signal, calls = impl.signals.Signal(name="test"), []
    first = _receiver(calls, "first")
    signal.connect(first)
    address = id(first)
    del first
    gc.collect()
    kept = []  # alive, so each new function gets another address
    for tag in range(10_000):
        candidate = _receiver(calls, tag)
        if id(candidate) == address:
            break
        kept.append(candidate)
    else:
        pytest.skip("no new function was allocated at the dead receiver's address")
    signal.connect(candidate)
    signal.send(sender=None)
    assert calls == [tag]


def test_a_pidfile_of_a_running_process_stops_the_start(cli_app, tmp_path: Path):
    pidfile = tmp_path / "worker.pid"
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            pidfile.write_text(f"{other.pid}\n")
            with pytest.raises(SystemExit, match=f"already running.*pid: {other.pid}"):
                main(["-A", cli_app("memory://"), "-q", "worker", "-c", "1",
                      "--pidfile", str(pidfile)])  # fmt: skip
        finally:
            other.kill()
    assert pidfile.read_text() == f"{other.pid}\n"  # left as it was


def test_a_stale_pidfile_is_replaced(cli_app, tmp_path: Path):
    pidfile = tmp_path / "worker.pid"
    with subprocess.Popen([sys.executable, "-c", "pass"]) as gone:
        pass  # waited for: its pid is free
    pidfile.write_text(f"{gone.pid}\n")

    assert run_worker_with_pidfile(cli_app("memory://"), pidfile, lambda: None) == EXIT_OK
    assert not pidfile.exists()
