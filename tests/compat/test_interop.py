"""Interop with unmodified Celery on a real redis-server (``spinach_compat.interop``).

A real Celery client publishes (no Celery worker needed) and our bridge worker runs the
tasks, the Celery client reading the results; our producer routes legacy tasks to a real
Celery worker and reads their results; a bridge worker SIGKILLed mid-stream loses nothing;
messages that cannot run end in the dead letters while good ones flow.
"""

from __future__ import annotations

import base64
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
import redis

from spinach_compat import signature
from spinach_compat.app import publish
from spinach_compat.exceptions import UnsupportedFeature
from spinach_compat.interop import legacy
from spinach_compat.interop.bridge import CeleryBridge, celery_lists
from spinach_compat.interop.results import celery_key

from .interop_proj.tasks import RUN_COUNT_KEY, RUNS_KEY, register
from .worker_process import WorkerProcess

celery = pytest.importorskip("celery")

WAIT = 30.0  #: seconds a test waits for an expected event before failing
PROJ = "tests.compat.interop_proj"


def wait_until(predicate: Callable[[], object], what: str, timeout: float = WAIT) -> object:
    """Poll Redis state until ``predicate`` holds (a deadline, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


@pytest.fixture
def celery_client(redis_url) -> Iterator:
    """An unmodified Celery app used as a client only (no Celery worker)."""
    client = celery.Celery("client", broker=redis_url, backend=redis_url, set_as_current=False)
    yield client
    client.close()


@pytest.fixture
def rclient(redis_url) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def facade(make_app, redis_url):
    """A facade app with the project's tasks, whose worker does not run yet."""
    app = make_app("interop", broker=redis_url, backend=redis_url)
    register(app)
    return app


@pytest.fixture
def bridged(facade) -> Iterator:
    """The facade's worker on queue 'celery', with a bridge of Celery's 'celery' queue."""
    facade.start_worker(concurrency=4, queues=["celery"], block=False)
    bridge = CeleryBridge(facade, ["celery"], poll_interval=0.02).start()
    yield SimpleNamespace(app=facade, bridge=bridge, broker=facade.engine.broker)
    bridge.stop()


# -- Celery client -> our worker -----------------------------------------------------------


def test_values_and_failures_reach_the_celery_client(bridged, celery_client):
    assert celery_client.send_task("interop.add", args=(2, 3)).get(timeout=WAIT) == 5
    failed = celery_client.send_task("interop.fail", args=("boom",))
    with pytest.raises(ValueError, match="boom"):
        failed.get(timeout=WAIT)
    assert failed.state == "FAILURE" and "ValueError" in failed.traceback


def test_countdown_and_eta_never_start_early(bridged, celery_client):
    sent = time.time()
    by_countdown = celery_client.send_task("interop.stamp", countdown=1)
    eta = datetime.now(timezone.utc) + timedelta(seconds=1)
    by_eta = celery_client.send_task("interop.stamp", eta=eta)
    assert by_countdown.get(timeout=WAIT) >= sent + 1
    assert by_eta.get(timeout=WAIT) >= eta.timestamp()


def test_eta_job_is_held_in_redis(bridged, celery_client, rclient):
    later = celery_client.send_task("interop.add", args=(1, 1), countdown=3600)
    scheduled = lambda: [j for j in bridged.broker.scheduled_jobs() if j.id == later.id]  # noqa: E731
    [job] = wait_until(scheduled, "the ETA job in the native future set")
    assert job.at_timestamp > time.time() + 3000
    assert rclient.llen("celery") == 0 and later.state == "PENDING"


def test_expired_task_is_revoked_and_never_runs(bridged, celery_client, rclient):
    past = datetime.now(timezone.utc) - timedelta(seconds=5)
    expired = celery_client.send_task("interop.record", args=(1,), expires=past)
    with pytest.raises(celery.exceptions.TaskRevokedError):
        expired.get(timeout=WAIT)
    assert expired.state == "REVOKED"
    assert celery_client.send_task("interop.record", args=(2,)).get(timeout=WAIT) == 2
    assert rclient.smembers(RUNS_KEY) == {b"2"}


def test_retries_and_request_headers(bridged, celery_client):
    assert celery_client.send_task("interop.flaky", args=(2,)).get(timeout=WAIT) == 2
    result = celery_client.send_task(
        "interop.request", root_id="root-1", parent_id="parent-1", time_limit=30,
        soft_time_limit=20,
    )  # fmt: skip
    request = result.get(timeout=WAIT)
    assert request == {"id": result.id, "root_id": "root-1", "parent_id": "parent-1",
                       "retries": 0, "timelimit": [30, 20]}  # fmt: skip


def test_a_celery_producer_s_argument_reprs_are_the_request_s(bridged, celery_client):
    """A Celery producer's ``argsrepr``/``kwargsrepr`` headers, given or made by it (its
    ``saferepr`` of the arguments), are what the facade's worker shows, as Celery's."""
    hidden = celery_client.send_task(
        "interop.reprs", args=("4111",), kwargs={"cvv": "123"}, argsrepr="(<card>,)",
        kwargsrepr="{'cvv': '<cvv>'}",
    )  # fmt: skip
    plain = celery_client.send_task("interop.reprs", args=("4111",))
    assert hidden.get(timeout=WAIT) == ["(<card>,)", "{'cvv': '<cvv>'}"]
    assert plain.get(timeout=WAIT) == ["('4111',)", "{}"]


def test_priorities_are_taken_highest_first(facade, celery_client, rclient):
    sent = [celery_client.send_task("interop.add", args=(p, 0), priority=p) for p in (9, 6, 0)]
    assert [rclient.llen(name) for name in celery_lists("celery")] == [1, 0, 1, 1]
    bridge = CeleryBridge(facade, ["celery"])
    try:
        assert bridge.step() == 3
    finally:
        bridge.stop()
    queued = rclient.lrange(facade.engine.broker.queue_key("celery"), 0, -1)
    assert [json.loads(p)["id"] for p in queued] == [r.id for r in reversed(sent)]
    facade.start_worker(concurrency=2, queues=["celery"], block=False)
    assert [r.get(timeout=WAIT) for r in sent] == [9, 6, 0]


def _envelope(headers: dict, body: bytes, content_type: str = "application/json") -> bytes:
    return json.dumps({
        "body": base64.b64encode(body).decode(), "content-encoding": "utf-8",
        "content-type": content_type, "headers": headers,
        "properties": {"body_encoding": "base64", "delivery_tag": "x", "priority": 0},
    }).encode()  # fmt: skip


def test_bad_messages_go_to_the_dead_letters_while_good_ones_flow(bridged, celery_client, rclient):
    good = [celery_client.send_task("interop.add", args=(i, i)) for i in range(3)]
    rclient.lpush("celery", b"\xff not json")
    celery_client.send_task("no.such.task", args=(1,))
    headers = {"task": "interop.add", "id": "pickled-1", "lang": "py"}
    rclient.lpush("celery", _envelope(headers, b"\x80\x04.", "application/x-python-serialize"))
    good += [celery_client.send_task("interop.add", args=(i, 1)) for i in range(3)]
    assert [r.get(timeout=WAIT) for r in good] == [0, 2, 4, 1, 2, 3]
    letters = wait_until(lambda: len(bridged.broker.list_dead_letters()) == 3 and
                         bridged.broker.list_dead_letters(), "three dead letters")  # fmt: skip
    reasons = " | ".join(letter.reason for letter in letters)
    assert "envelope is not JSON" in reasons
    assert "unknown task 'no.such.task'" in reasons
    assert "content type 'application/x-python-serialize'" in reasons  # refused unread
    assert rclient.llen(bridged.bridge.processing_key("celery")) == 0


def test_a_message_without_a_body_is_dead_lettered_with_that_reason(app):
    from spinach_compat.interop.message import convert

    @app.task(name="t")
    def t():
        pass

    headers = {"task": "t", "id": "bodiless-1", "lang": "py"}
    envelope = {"content-type": "application/x-python-serialize", "headers": headers}
    converted = convert(app, "celery", json.dumps(envelope).encode(), "fallback")
    assert (converted.id, converted.dead) == ("bodiless-1", True)
    assert converted.reason == "Celery message: the message has no body"


def test_a_celery_producer_s_pickle_runs_only_where_accepted(bridged, celery_client):
    """As with a Celery worker: refused (FAILURE, ContentDisallowed) unless accepted."""
    from kombu.exceptions import ContentDisallowed

    celery_client.conf.update(task_serializer="pickle", task_compression="zlib")
    refused = celery_client.send_task("interop.add", args=(1, 2))
    with pytest.raises(ContentDisallowed):
        refused.get(timeout=WAIT)
    bridged.app.conf.accept_content = ["json", "pickle"]
    assert celery_client.send_task("interop.add", args=(2, 3)).get(timeout=WAIT) == 5


# -- our producer -> a legacy Celery worker ------------------------------------------------


class InteropWorker(WorkerProcess):
    """A worker of ``tests.compat.interop_proj``, real Celery or the facade."""

    def command(self) -> list[str]:
        if self.impl == "celery":
            return [sys.executable, "-m", "celery", "-A", PROJ, "worker", "-P", "threads",
                    *self.args]  # fmt: skip
        return [sys.executable, "-m", "spinach_compat", "-A", PROJ, "worker", *self.args]

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "INTEROP_IMPL": self.impl, "INTEROP_URL": self.url}


def test_legacy_tasks_run_on_a_celery_worker(make_app, redis_url, tmp_path, rclient):
    args = ["-c", "2", "-l", "info", "-n", "legacy@%h", "--without-gossip", "--without-mingle"]
    worker = InteropWorker("celery", redis_url, args, tmp_path / "celery.log").start()
    try:
        app = make_app("producer", broker=redis_url, backend=redis_url,
                       spinach_legacy_tasks=["interop.legacy_*"])  # fmt: skip
        assert app.send_task("interop.legacy_mul", args=(6, 7)).get(timeout=WAIT) == 42
        failed = app.send_task("interop.legacy_fail", args=("gone",))
        with pytest.raises(KeyError):
            failed.get(timeout=WAIT)
        assert failed.state == "FAILURE" and rclient.exists(celery_key(failed.id))
        hidden = app.send_task("interop.legacy_reprs", args=("4111",), argsrepr="(<card>,)")
        assert hidden.get(timeout=WAIT) == ["(<card>,)", "{}"]  # the reprs Celery's worker read
        app.conf.spinach_legacy_tasks = []  # moved back: now a native job
        native = app.send_task("interop.legacy_mul", args=(2, 2))
        assert app.engine.broker.queue_lengths() == {"celery": 1} and native.state == "PENDING"
    finally:
        assert worker.stop() == 0, worker.describe()


def test_what_legacy_workers_would_not_get_is_refused(make_app, redis_url, rclient):
    app = make_app("producer", broker=redis_url, backend=redis_url,
                   spinach_legacy_tasks=["interop.legacy_*"])  # fmt: skip
    callback = signature("interop.record", args=(1,), app=app)
    with pytest.raises(UnsupportedFeature, match=r"legacy Celery workers.*callbacks"):
        app.send_task("interop.legacy_mul", args=(6, 7), link=callback)
    with pytest.raises(UnsupportedFeature, match="priority"):
        app.send_task("interop.legacy_mul", args=(6, 7), priority=6)
    assert rclient.llen("celery") == 0  # nothing half sent


def test_a_group_member_sent_to_legacy_workers_carries_its_group(make_app):
    app = make_app("producer", spinach_legacy_tasks=["interop.legacy_*"])
    options = {"group_id": "the-group", "group_index": 0}
    message = publish.resolve(app, "interop.legacy_mul", (6, 7), {}, options)
    headers = legacy.headers_of(message.name, message.task_id, [6, 7], {}, message.meta)
    assert (headers["group"], headers["group_index"]) == ("the-group", 0)  # Celery's headers


LONG_ARGS = (list(range(600)), "word " * 300, {"nested": [[[["deep"]]]]}, b"\x00" * 50)
LONG_KWARGS = {"text": "x" * 2000, "items": {f"k{i}": i for i in range(300)}, "n": 1.5}


def test_a_message_to_legacy_workers_has_celery_s_default_reprs(make_app):
    """Made as a Celery 5.7 client makes them (``app.amqp.as_task_v2``): ``saferepr`` of
    the arguments, cut at 1,024 characters and 3 levels."""
    app = make_app("producer", spinach_legacy_tasks=["interop.legacy_*"])
    message = publish.resolve(app, "interop.legacy_mul", LONG_ARGS, LONG_KWARGS, {})
    ours = legacy.headers_of(
        message.name, message.task_id, list(LONG_ARGS), LONG_KWARGS, message.meta
    )
    real = celery.Celery("real", set_as_current=False)
    theirs = real.amqp.as_task_v2(message.task_id, message.name, LONG_ARGS, LONG_KWARGS).headers
    assert (ours["argsrepr"], ours["kwargsrepr"]) == (theirs["argsrepr"], theirs["kwargsrepr"])
    assert len(ours["argsrepr"]) < 1100 and ours["argsrepr"].endswith("..., ...])")
    short = legacy.headers_of(message.name, message.task_id, [6, "x"], {"k": None}, message.meta)
    assert (short["argsrepr"], short["kwargsrepr"]) == ("(6, 'x')", "{'k': None}")


def test_a_message_to_legacy_workers_carries_the_given_reprs(make_app):
    """Celery's ``argsrepr``/``kwargsrepr`` headers: the call's (a header of that name over
    the option, as Celery's), else the reprs of the arguments."""
    app = make_app("producer", spinach_legacy_tasks=["interop.legacy_*"])

    def headers(options: dict) -> dict:
        message = publish.resolve(app, "interop.legacy_mul", (6, 7), {}, options)
        return legacy.headers_of(message.name, message.task_id, [6, 7], {}, message.meta)

    given = headers({"argsrepr": "(<a>, <b>)", "kwargsrepr": ""})
    assert (given["argsrepr"], given["kwargsrepr"]) == ("(<a>, <b>)", "")
    plain = headers({})
    assert (plain["argsrepr"], plain["kwargsrepr"]) == ("(6, 7)", "{}")
    overridden = headers({"argsrepr": "(<a>, <b>)", "headers": {"argsrepr": "(<x>,)"}})
    assert overridden["argsrepr"] == "(<x>,)"


# -- crash safety --------------------------------------------------------------------------


def test_a_killed_bridge_worker_loses_nothing(redis_url, tmp_path, celery_client, rclient):
    args = ["-c", "4", "-l", "info", "--celery-queues", "celery"]
    first = InteropWorker("spinach_compat", redis_url, args, tmp_path / "first.log").start()
    count = 300
    for number in range(count // 2):
        celery_client.send_task("interop.record", args=(number,))
    wait_until(lambda: rclient.scard(RUNS_KEY) >= 30, "the first runs")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    for number in range(count // 2, count):  # while no worker runs
        celery_client.send_task("interop.record", args=(number,))
    second = InteropWorker("spinach_compat", redis_url, args, tmp_path / "second.log").start()
    try:
        wait_until(lambda: rclient.scard(RUNS_KEY) == count, "every message run")
    finally:
        assert second.stop() == 0, second.describe()
    assert int(rclient.get(RUN_COUNT_KEY)) >= count
    assert all(rclient.llen(name) == 0 for name in celery_lists("celery"))


def test_messages_taken_by_a_crashed_bridge_are_recovered(facade, celery_client, rclient):
    sent = [celery_client.send_task("interop.add", args=(i, 1)) for i in range(5)]
    crashed = CeleryBridge(facade, ["celery"])
    try:  # it took them, then died before committing them
        keys = [crashed.processing_key("celery"), *celery_lists("celery")]
        assert len(crashed._take(keys=keys, args=[100])) == 5
    finally:
        crashed.stop()
    assert rclient.llen("celery") == 0 and rclient.llen(crashed.processing_key("celery")) == 5
    facade.start_worker(concurrency=2, queues=["celery"], block=False)
    bridge = CeleryBridge(facade, ["celery"]).start()
    try:
        assert [r.get(timeout=WAIT) for r in sent] == [1, 2, 3, 4, 5]
    finally:
        bridge.stop()
    assert rclient.llen(bridge.processing_key("celery")) == 0


def test_a_message_committed_twice_is_stored_once(facade, celery_client, rclient):
    celery_client.send_task("interop.add", args=(1, 1))
    bridge = CeleryBridge(facade, ["celery"])
    try:
        keys = [bridge.processing_key("celery"), *celery_lists("celery")]
        [message] = bridge._take(keys=keys, args=[100])
        bridge.commit("celery", [message])
        bridge.commit("celery", [message])  # a command sent again, or a second bridge
    finally:
        bridge.stop()
    assert bridge.stored == 1
    assert facade.engine.broker.queue_lengths() == {"celery": 1}


def test_bridging_a_queue_of_legacy_tasks_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "legacyapp.py").write_text(
        "from spinach_compat import Celery\n"
        "app = Celery('legacyapp', broker='memory://', task_routes={\n"
        "    'reports.*': {'queue': 'old', 'legacy': True}})\n"
        "app.conf.spinach_legacy_tasks = ['mail.*']\n"
        "@app.task(name='mail.send', queue='mail')\n"
        "def send(): pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from spinach_compat.bin.celery import EXIT_USAGE, main

    for queues in ("celery,old", "mail"):
        assert main(["-A", "legacyapp", "worker", "--celery-queues", queues]) == EXIT_USAGE
        assert "routed to legacy Celery workers" in capsys.readouterr().err
