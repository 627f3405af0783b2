"""``revoke(terminate=True)``: a running task stopped in its worker thread."""

from __future__ import annotations

import json
import threading
import time

import pytest

from spinach_compat import signals
from spinach_compat.app.terminate import Terminations, signum_of
from spinach_compat.exceptions import TaskRevokedError

from ..helpers import wait_until
from .conftest import WAIT

#: Seconds the looping task runs at most when nothing stops it (a test failing, not hanging).
LOOP_BOUND = 30.0


@pytest.fixture(params=["memory", "redis"])
def url(request) -> str:
    return "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")


@pytest.fixture
def looping(make_app, url, monkeypatch):
    """An app (one worker thread) whose ``loop`` task spins in Python until stopped."""
    monkeypatch.setattr(Terminations, "refresh_interval", 0.02)
    app = make_app(broker=url, backend=url)
    started, runs = threading.Event(), []

    @app.task(name="loop")
    def loop():
        runs.append(1)
        started.set()
        deadline = time.monotonic() + LOOP_BOUND
        count = 0
        while time.monotonic() < deadline:
            count += 1
        return count

    @app.task(name="add")
    def add(x, y):
        return x + y

    app.start_worker(concurrency=1, block=False)
    return app, started, runs


def _revoked_events(recorder):
    def receiver(sender, request, terminated, signum, expired, **kwargs):
        recorder.add("revoked", request.id, terminated, signum, expired)

    signals.task_revoked.connect(receiver, weak=False)
    return receiver


def _stop_and_check(app, client, started, runs, recorder, **revoke) -> None:
    result = app.tasks["loop"].delay()
    assert started.wait(WAIT)
    receiver = _revoked_events(recorder)
    try:
        client.control.revoke(result.id, terminate=True, **revoke)
        recorder.wait_for(lambda events: events)
    finally:
        signals.task_revoked.disconnect(receiver)
    signum = signum_of(revoke.get("signal"))
    assert recorder.named("revoked") == [("revoked", result.id, True, signum, False)]
    with pytest.raises(TaskRevokedError) as caught:
        result.get(timeout=WAIT)
    assert caught.value.args == ("terminated",) and result.state == "REVOKED"
    assert app.tasks["add"].delay(2, 3).get(timeout=WAIT) == 5  # the thread runs the next
    assert runs == [1]  # not run again


def test_a_running_task_is_stopped(looping, recorder):
    app, started, runs = looping
    _stop_and_check(app, app, started, runs, recorder)


def test_a_request_from_another_process_reaches_the_running_task(looping, make_app, url, recorder):
    if url.startswith("memory"):
        pytest.skip("memory:// is one process")
    app, started, runs = looping
    client = make_app(broker=url, backend=url, spinach_namespace=app.namespace)
    _stop_and_check(app, client, started, runs, recorder, signal="KILL")


def test_terminate_is_revoke_with_terminate(looping):
    app, started, _ = looping
    result = app.tasks["loop"].delay()
    assert started.wait(WAIT)
    app.control.terminate(result.id, signal="SIGINT")
    assert result.get(timeout=WAIT, propagate=False).args == ("terminated",)
    assert app.tasks["add"].delay(1, 1).get(timeout=WAIT) == 2


def test_a_task_not_running_is_revoked_and_never_runs(looping):
    app, _, _ = looping
    result = app.tasks["add"].apply_async((1, 2), countdown=0.3)
    app.control.revoke(result.id, terminate=True)
    assert result.get(timeout=WAIT, propagate=False).args == ("revoked",)
    assert app.tasks["add"].apply_async((2, 2), countdown=0.4).get(timeout=WAIT) == 4
    assert result.state == "REVOKED"


def test_signal_names_as_celery_takes_them():
    assert signum_of(None) == signum_of("SIGTERM") == signum_of("TERM") == 15
    assert signum_of("KILL") == signum_of(9) == 9
    with pytest.raises(ValueError, match="NOPE"):
        signum_of("NOPE")


def test_the_stored_meta_is_celerys(make_app, redis_url):
    """The result of a terminated task reads as real Celery's worker stores it."""
    celery = pytest.importorskip("celery")
    capp = celery.Celery("c", broker=redis_url, backend=redis_url, set_as_current=False)
    capp.backend.mark_as_revoked("t-celery", "terminated")
    app = make_app(broker=redis_url, backend=redis_url)
    app.backend.mark_as_revoked("t-ours", "terminated")
    ours = app.backend.get_task_meta("t-ours")
    theirs = json.loads(capp.backend.get("celery-task-meta-t-celery"))
    assert ours["status"] == theirs["status"] == "REVOKED"
    drop_module = {"exc_module": None}  # ours names spinach_compat.exceptions
    assert {**ours["result"], **drop_module} == {**theirs["result"], **drop_module}


def test_broadcast_terminate_replies_from_the_node_running_it(looping):
    app, started, _ = looping
    result = app.tasks["loop"].delay()
    assert started.wait(WAIT)
    node = app.hostname
    replies = app.control.broadcast("terminate", {"task_id": result.id}, reply=True)
    assert replies == [{node: {"ok": f"terminate: {result.id}"}}]
    assert result.get(timeout=WAIT, propagate=False).args == ("terminated",)
    assert wait_until(lambda: result.id not in app.control.running_ids())
    again = app.control.revoke(result.id, terminate=True, reply=True)
    assert again == [{node: {"ok": "terminate: tasks unknown"}}]
