"""Celery events from facade workers (``-E``), read by real Celery's ``EventReceiver`` and
``State`` on the same Redis, compared with a real Celery worker's, and shown by Flower.

Every wait is for an event, a log line or a Redis reply (deadlines are safety nets only).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import celery
import pytest
from celery.events.receiver import EventReceiver
from celery.events.state import State

from tests.compat.worker_process import ROOT, project_worker
from tests.helpers import wait_until

TIMEOUT = 30.0  #: seconds an awaited event gets before the test gives up
TASKS = "tests.compat.proj.tasks"
NODE = "events@testhost"


class Capture:
    """Real Celery's receiver in a thread, feeding a real ``State`` and a list of events."""

    def __init__(self, url: str, redis_server: Any, db: int):
        self.app = celery.Celery(broker=url, set_as_current=False)
        self.state = State()
        self.events: list[dict[str, Any]] = []
        self.receiver: EventReceiver | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="event-capture")
        self._redis, self._db = redis_server, db

    def __enter__(self) -> Capture:
        with self._redis.client(db=self._db) as client:
            before = client.pubsub_numpat()
            self._thread.start()
            assert wait_until(lambda: client.pubsub_numpat() > before, TIMEOUT)  # subscribed
        return self

    def __exit__(self, *exc: object) -> None:
        if self.receiver is not None:
            self.receiver.should_stop = True
        self._thread.join(TIMEOUT)

    def _run(self) -> None:
        with self.app.connection() as connection:
            self.receiver = self.app.events.Receiver(connection, handlers={"*": self._on})
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def _on(self, event: dict[str, Any]) -> None:
        with self._changed:
            self.state.event(event)
            self.events.append(dict(event))
            self._changed.notify_all()

    def wait_for(self, found: Callable[[list[dict[str, Any]]], Any]) -> Any:
        """Wait until ``found(events)`` is true; its value."""
        with self._changed:
            value = self._changed.wait_for(lambda: found(self.events), TIMEOUT)
        assert value, f"not seen within {TIMEOUT}s; events: {[e['type'] for e in self.events]}"
        return value

    def of(self, task_id: str) -> list[str]:
        return [e["type"] for e in self.events if e.get("uuid") == task_id]

    def ended(self, task_id: str, last: str) -> Callable[[list], bool]:
        return lambda events: last in [e["type"] for e in events if e.get("uuid") == task_id]


def _client(impl: str, url: str) -> Any:
    if impl == "celery":
        return celery.Celery(broker=url, backend=url, set_as_current=False)
    import spinach_compat

    return spinach_compat.Celery("proj", broker=url, backend=url, set_as_current=False)


#: What the hidden call of the scenario shows for its arguments ("4111", cvv="123").
SHOWN = ("('<card>',)", "{'cvv': '<cvv>'}")


def _scenario(client: Any, capture: Capture) -> dict[str, Any]:
    """A succeeded, a failed, a retried and a revoked task, and one whose arguments are
    hidden (``argsrepr``/``kwargsrepr``, its task-sent sent); their ids once all ended, and
    what the hidden one's request showed."""
    revoked = str(uuid.uuid4())
    client.control.revoke(revoked)
    ids: dict[str, Any] = {
        "succeeded": client.send_task(f"{TASKS}.add", (2, 3)).id,
        "failed": client.send_task(f"{TASKS}.fail", ("boom",)).id,
        "retried": client.send_task(f"{TASKS}.flaky", (1,)).id,
        "revoked": client.send_task(f"{TASKS}.add", (1, 1), task_id=revoked).id,
    }
    client.conf.task_send_sent_event = True  # for the hidden call only: the others were sent
    hidden = client.send_task(f"{TASKS}.reprs", ("4111",), {"cvv": "123"},
                              argsrepr=SHOWN[0], kwargsrepr=SHOWN[1])  # fmt: skip
    ids["hidden"] = hidden.id
    for name, last in (("succeeded", "task-succeeded"), ("failed", "task-failed"),
                       ("retried", "task-succeeded"), ("revoked", "task-revoked"),
                       ("hidden", "task-succeeded")):  # fmt: skip
        capture.wait_for(capture.ended(ids[name], last))
    stored = lambda: client.backend.get_task_meta(hidden.id)  # noqa: E731 (no result listener)
    assert wait_until(lambda: stored()["status"] == "SUCCESS", TIMEOUT)
    ids["hidden_request"] = stored()["result"]
    capture.wait_for(lambda events: any(e["type"] == "worker-heartbeat" for e in events))
    return ids


def _run(impl: str, redis_server: Any, db: int, log: Path) -> tuple[Capture, dict[str, Any]]:
    url = redis_server.url_for(db)
    with redis_server.client(db=db) as client:
        client.flushdb()
    capture = Capture(url, redis_server, db)
    extra = ["--without-gossip", "--without-mingle"] if impl == "celery" else []
    with capture:
        with project_worker(impl, redis_server, db, log, ["-P", "threads", "-c", "2", "-E",
                                                           "-n", NODE, *extra]):  # fmt: skip
            ids = _scenario(_client(impl, url), capture)
        capture.wait_for(lambda events: events[-1]["type"] == "worker-offline")
    return capture, ids


@pytest.fixture(scope="module")
def facade_run(redis_server, tmp_path_factory) -> tuple[Capture, dict[str, Any]]:
    return _run("spinach_compat", redis_server, 11, tmp_path_factory.mktemp("ev") / "w.log")


@pytest.fixture(scope="module")
def celery_run(redis_server, tmp_path_factory) -> tuple[Capture, dict[str, Any]]:
    """The same scenario with a real Celery 5.7 client and worker."""
    return _run("celery", redis_server, 12, tmp_path_factory.mktemp("ev") / "celery.log")


def test_celery_state_follows_a_facade_worker(facade_run):
    capture, ids = facade_run
    tasks = capture.state.tasks

    assert tasks[ids["succeeded"]].state == "SUCCESS"
    assert tasks[ids["succeeded"]].result == "5" and tasks[ids["succeeded"]].runtime >= 0
    assert tasks[ids["succeeded"]].name == f"{TASKS}.add"
    assert tasks[ids["succeeded"]].args == "(2, 3)"
    assert tasks[ids["failed"]].state == "FAILURE"
    assert tasks[ids["failed"]].exception == "ValueError('boom')"
    assert "ValueError: boom" in tasks[ids["failed"]].traceback
    assert capture.of(ids["retried"]) == [
        "task-received", "task-started", "task-retried",
        "task-received", "task-started", "task-succeeded",
    ]  # fmt: skip
    assert tasks[ids["retried"]].state == "SUCCESS" and tasks[ids["retried"]].retries == 1
    assert tasks[ids["revoked"]].state == "REVOKED"
    assert capture.of(ids["revoked"]) == ["task-revoked"]
    assert {task.worker.hostname for task in tasks.values()} == {NODE}


def test_the_worker_is_online_beats_and_goes_offline(facade_run):
    capture, _ = facade_run
    types = [e["type"] for e in capture.events if e["type"].startswith("worker-")]

    assert types[0] == "worker-online" and types[-1] == "worker-offline"
    assert "worker-heartbeat" in types
    beat = next(e for e in capture.events if e["type"] == "worker-heartbeat")
    assert beat["freq"] == 2.0 and beat["sw_ident"] == "spinach-compat"
    offline = capture.events[-1]
    assert offline["processed"] == 5 and offline["active"] == 0  # once, once, twice, none, once
    worker = capture.state.workers[NODE]
    assert worker.processed == 5 and not worker.alive  # offline now


def test_event_fields_are_celerys(facade_run, celery_run):
    """Each type of event carries the fields a real Celery worker sends for it."""
    ours, _ = facade_run
    theirs, _ = celery_run

    def fields(capture: Capture) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for event in capture.events:
            found.setdefault(event["type"], set()).update(event)
        return found

    assert fields(ours) == fields(theirs)


def test_prefork_children_send_task_events_as_the_node(redis_server, tmp_path):
    """Each child sends its tasks' events under the node's name and its own pid; the
    parent sends the worker events, counting the children's jobs."""
    url, args = redis_server.url_for(13), ["-P", "prefork", "-c", "2", "-E", "-n", NODE]
    log = tmp_path / "w.log"
    with Capture(url, redis_server, 13) as capture:  # noqa: SIM117 (it outlives the worker)
        with project_worker("spinach_compat", redis_server, 13, log, args) as (worker, _):
            client = _client("spinach_compat", url)
            ids = [client.send_task(f"{TASKS}.add", (n, n)).id for n in range(4)]
            for task_id in ids:
                capture.wait_for(capture.ended(task_id, "task-succeeded"))
            beat = capture.wait_for(lambda events: next((
                e for e in events if e["type"] == "worker-heartbeat" and e["processed"] == 4
            ), None))  # fmt: skip
    task_events = [e for e in capture.events if e.get("uuid") in ids]
    assert {e["hostname"] for e in task_events} == {NODE}
    assert worker.process is not None and beat["pid"] == worker.process.pid
    assert worker.process.pid not in {e["pid"] for e in task_events}
    assert {capture.state.tasks[task_id].state for task_id in ids} == {"SUCCESS"}


def test_enable_and_disable_events_by_remote_control(redis_server, tmp_path):
    """Without -E a worker sends task events once told to (Celery's ``enable_events``),
    stops when told to; ``heartbeat`` sends one at once; a prefork node says it cannot."""
    url, log = redis_server.url_for(12), tmp_path / "w.log"
    with Capture(url, redis_server, 12) as capture:  # noqa: SIM117 (it outlives the worker)
        with project_worker("spinach_compat", redis_server, 12, log, ["-P", "threads",
                                                                       "-n", NODE]):  # fmt: skip
            client = _client("spinach_compat", url)
            silent = client.send_task(f"{TASKS}.add", (1, 1))
            assert silent.get(timeout=TIMEOUT) == 2
            assert client.control.enable_events(reply=True) == [
                {NODE: {"ok": "task events enabled"}}
            ]
            heard = client.send_task(f"{TASKS}.add", (2, 2))
            capture.wait_for(capture.ended(heard.id, "task-succeeded"))
            assert client.control.disable_events(reply=True) == [
                {NODE: {"ok": "task events disabled"}}
            ]
            beats = len([e for e in capture.events if e["type"] == "worker-heartbeat"])
            client.control.heartbeat()
            capture.wait_for(lambda events: len(
                [e for e in events if e["type"] == "worker-heartbeat"]) > beats)  # fmt: skip
            quiet = client.send_task(f"{TASKS}.add", (3, 3))
            assert quiet.get(timeout=TIMEOUT) == 6
    assert capture.of(silent.id) == [] and capture.of(quiet.id) == []


# -- Flower ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return json.loads(response.read())


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def flower(redis_server) -> Iterator[str]:
    """Real Flower (Celery's command line) on db 14; its base URL."""
    url, port = redis_server.url_for(14), _free_port()
    env = {**os.environ, "FLOWER_UNAUTHENTICATED_API": "true", "PYTHONPATH": str(ROOT)}
    with redis_server.client(db=14) as client:
        client.flushdb()
        before = client.pubsub_numpat()
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", f"--broker={url}", "flower", f"--port={port}",
             "--address=127.0.0.1"], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            assert wait_until(lambda: _answers(f"{base}/healthcheck"), TIMEOUT)
            assert wait_until(lambda: client.pubsub_numpat() > before, TIMEOUT)  # it listens
            yield base
        finally:
            process.terminate()
            process.wait(TIMEOUT)


def test_flower_shows_facade_tasks_and_workers(flower, redis_server, tmp_path):
    url = redis_server.url_for(14)
    with project_worker("spinach_compat", redis_server, 14, tmp_path / "w.log",
                        ["-P", "threads", "-E", "-n", NODE]):  # fmt: skip
        client = _client("spinach_compat", url)
        ok = client.send_task(f"{TASKS}.add", (2, 3))
        failed = client.send_task(f"{TASKS}.fail", ("boom",))

        def shown() -> dict[str, Any] | None:
            tasks = _get(f"{flower}/api/tasks")
            done = {ok.id: "SUCCESS", failed.id: "FAILURE"}
            return (
                tasks if all(tasks.get(i, {}).get("state") == s for i, s in done.items()) else None
            )

        assert wait_until(lambda: shown() is not None, TIMEOUT)
        tasks = shown()
        assert tasks is not None and tasks[ok.id]["result"] == "5"
        assert tasks[ok.id]["worker"] == tasks[failed.id]["worker"] == NODE
        assert tasks[failed.id]["exception"] == "ValueError('boom')"
        workers = _get(f"{flower}/workers?json=1")["data"]  # from the events
        assert [(w["hostname"], w["status"], w["processed"] >= 0) for w in workers] == [
            (NODE, True, True)
        ]
        asked: dict[str, Any] = {}

        def answered() -> bool:  # Flower's inspect (remote control); a reply may time out
            asked.update(_get(f"{flower}/api/workers?refresh=1"))
            return "registered" in asked.get(NODE, {})

        assert wait_until(answered, TIMEOUT), asked
        assert f"{TASKS}.add" in asked[NODE]["registered"]
        assert asked[NODE]["stats"]["pool"]["implementation"] == (
            "celery.concurrency.thread:TaskPool"
        )
        assert [q["name"] for q in asked[NODE]["active_queues"]] == ["celery"]


def test_an_unreachable_event_broker_is_logged_and_jobs_still_run(make_app, caplog):
    """Events are best effort: publishing failures are logged once, jobs run on."""
    from spinach_compat.events.worker import WorkerEvents

    app = make_app(broker="memory://")  # jobs in process; kombu's events go nowhere
    app.conf.event_exchange = "events-nowhere"
    app.conf.broker_transport_options = {"max_retries": 0}
    app.connection_for_write = lambda: _unreachable()  # what kombu reaches for events

    @app.task
    def add(a, b):
        return a + b

    events = WorkerEvents(app, NODE, heartbeats=False)
    events.start()
    try:
        app.start_worker(concurrency=1, block=False)
        try:
            assert [add.delay(n, n).get(timeout=TIMEOUT) for n in range(3)] == [0, 2, 4]
        finally:
            app.stop_worker()
    finally:
        events.shutdown()
    warnings = [r for r in caplog.records if r.name == "spinach_compat.events"]
    assert len(warnings) == 1 and "cannot be published" in warnings[0].getMessage()
    assert "jobs are not affected" in warnings[0].getMessage()


def _unreachable() -> Any:
    import kombu

    return kombu.Connection(f"redis://127.0.0.1:{_free_port()}/0", connect_timeout=0.2,
                            transport_options={"max_retries": 0})  # fmt: skip


# -- spinach-compat events ---------------------------------------------------------------


def test_dump_prints_events_as_celerys_dumper():
    from io import StringIO

    from celery.events.dumper import Dumper as CeleryDumper

    from spinach_compat.bin.monitor import Dumper

    events = [
        {"type": "worker-online", "hostname": NODE, "timestamp": 1.5e9, "freq": 2.0},
        {"type": "task-received", "hostname": NODE, "timestamp": 1.5e9 + 1, "uuid": "id-1",
         "name": "proj.add", "args": "(2, 3)", "kwargs": "{}", "retries": 0, "eta": None},
        {"type": "task-succeeded", "hostname": NODE, "timestamp": 1.5e9 + 2, "uuid": "id-1",
         "result": "5", "runtime": 0.25},
        {"type": "task-started", "hostname": NODE, "timestamp": 1.5e9 + 3, "uuid": "unknown"},
    ]  # fmt: skip
    ours, theirs = StringIO(), StringIO()
    dumper, celery_dumper = Dumper(ours), CeleryDumper(out=theirs)
    for event in events:
        dumper.on_event(dict(event))
        celery_dumper.on_event(dict(event))
    assert ours.getvalue() == theirs.getvalue()
    assert "proj.add(id-1) args=(2, 3) kwargs={}" in ours.getvalue().splitlines()[2]


def test_events_dump_prints_a_facade_workers_events(redis_server, tmp_path):
    from tests.support.processes import LogReader

    url = redis_server.url_for(15)
    with project_worker("spinach_compat", redis_server, 15, tmp_path / "w.log",
                        ["-P", "threads", "-E", "-n", NODE]):  # fmt: skip
        env = {**os.environ, "PROJ_BROKER_URL": url, "PYTHONPATH": str(ROOT)}
        with redis_server.client(db=15) as client:
            before = client.pubsub_numpat()
            dump = subprocess.Popen(
                [sys.executable, "-m", "spinach_compat", "-A", "tests.compat.proj", "events",
                 "--dump"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            assert dump.stdout is not None
            log = LogReader(dump.stdout)
            try:
                assert wait_until(lambda: client.pubsub_numpat() > before, TIMEOUT)
                task_id = _client("spinach_compat", url).send_task(f"{TASKS}.add", (2, 3)).id
                log.wait_for(f"{NODE} .* task succeeded: {TASKS}.add\\({task_id}\\) "
                             r"args=\(2, 3\) kwargs=\{\} .*result=5")  # fmt: skip
            finally:
                dump.terminate()
                status = dump.wait(TIMEOUT)
                log.join()
                dump.stdout.close()
    assert status == 0, log.text
    assert log.text.startswith("-> evdump: starting capture...")
    assert f"{NODE} [" in log.text and "task received:" in log.text


@pytest.mark.parametrize(("args", "named"), [
    ((), "events --dump"), (("-c", "myapp.Camera"), "-c/--camera"),
])  # fmt: skip
def test_events_without_dump_or_with_a_camera_is_refused(capsys, args, named):
    from spinach_compat.bin.celery import main

    status = main(["-A", "tests.compat.proj", "events", *args])
    err = capsys.readouterr().err
    assert status == 2 and named in err and "migration_guide/features.md#monitoring" in err


def test_argsrepr_and_kwargsrepr_hide_the_arguments_as_celerys(facade_run, celery_run):
    """A call's ``argsrepr``/``kwargsrepr`` are what its task-sent and task-received events
    (Flower's args and kwargs) and its request show, never the arguments, as with real
    Celery 5.7 (its producer and worker) on the same scenario."""

    def shown(run: tuple[Capture, dict[str, Any]]) -> tuple[dict, Any, str]:
        capture, ids = run
        events = [e for e in capture.events if e.get("uuid") == ids["hidden"]]
        reprs = {e["type"]: (e["args"], e["kwargs"]) for e in events if "args" in e}
        return reprs, ids["hidden_request"], capture.state.tasks[ids["hidden"]].args

    ours, theirs = shown(facade_run), shown(celery_run)
    assert ours == theirs
    assert ours == ({"task-sent": SHOWN, "task-received": SHOWN}, list(SHOWN), SHOWN[0])


# -- app.events, task-sent, custom events ------------------------------------------------


def test_task_sent_carries_celerys_fields(redis_server):
    """``task_send_sent_event``: the facade's task-sent has the fields of Celery's."""
    url = redis_server.url_for(10)
    import spinach_compat

    facade = spinach_compat.Celery("proj", broker=url, set_as_current=False)
    real = celery.Celery("proj", broker=url, set_as_current=False)
    for app in (facade, real):
        app.conf.task_send_sent_event = True
    long = (list(range(600)), "x" * 2000)  # cut at 1,024 characters as Celery's saferepr
    with Capture(url, redis_server, 10) as capture:
        ours = facade.send_task(f"{TASKS}.add", (1, 2), countdown=60).id
        theirs = real.send_task(f"{TASKS}.add", (1, 2), countdown=60).id
        ours_long = facade.send_task(f"{TASKS}.add", long, {"k": [[["deep"]]]}, countdown=60).id
        theirs_long = real.send_task(f"{TASKS}.add", long, {"k": [[["deep"]]]}, countdown=60).id
        sent = {ours, theirs, ours_long, theirs_long}
        capture.wait_for(lambda events: sent <= {e.get("uuid") for e in events})
    by_id = {e["uuid"]: e for e in capture.events}
    assert set(by_id[ours]) == set(by_id[theirs])
    shown = [(by_id[i]["args"], by_id[i]["kwargs"]) for i in (ours_long, theirs_long)]
    assert shown[0] == shown[1] and len(shown[0][0]) < 1100
    assert by_id[ours]["type"] == "task-sent" and by_id[ours]["name"] == f"{TASKS}.add"
    assert by_id[ours]["args"] == "(1, 2)" and by_id[ours]["queue"] == "celery"
    assert capture.state.tasks[ours].state == "PENDING"


def test_celerys_real_time_processing_example_runs_on_the_facade(make_app, redis_server):
    """The facade's ``app.events.Receiver`` and ``State`` (Celery's documented example), fed
    by an in-process worker with events, which also sends a task's custom event."""
    from spinach_compat.events.worker import WorkerEvents

    url = redis_server.url_for(9)
    app = make_app(broker=url, backend=url)

    @app.task(bind=True)
    def progress(self, n):
        self.send_event("task-progress", done=n)
        return n

    @app.task
    def broken():
        raise KeyError("missing")

    state, failed, custom = app.events.State(), [], []
    receivers: list = []

    def announce_failed_tasks(event):
        state.event(event)
        task = state.tasks.get(event["uuid"])
        failed.append(f"TASK FAILED: {task.name}[{task.uuid}] {task.info()}")

    def capture_all() -> None:
        with app.connection() as connection:
            handlers = {"task-failed": announce_failed_tasks, "task-progress": custom.append,
                        "*": state.event}  # fmt: skip
            receivers.append(app.events.Receiver(connection, handlers=handlers))
            receivers[0].capture(limit=None, timeout=None, wakeup=True)

    events = WorkerEvents(app, NODE, heartbeats=False)
    thread = threading.Thread(target=capture_all)
    with redis_server.client(db=9) as client:
        before = client.pubsub_numpat()
        thread.start()
        assert wait_until(lambda: client.pubsub_numpat() > before, TIMEOUT)
    events.start()
    try:
        app.start_worker(concurrency=1, block=False)
        assert progress.delay(7).get(timeout=TIMEOUT) == 7
        bad = broken.delay()
        assert wait_until(lambda: len(failed) == 1 and bad.id in state.tasks, TIMEOUT)
        assert wait_until(lambda: state.tasks[bad.id].state == "FAILURE", TIMEOUT)
    finally:
        app.stop_worker()
        events.shutdown()
        if receivers:
            receivers[0].should_stop = True
        thread.join(TIMEOUT)
    assert failed[0].startswith(f"TASK FAILED: {broken.name}[{bad.id}] {{")
    assert "KeyError('missing')" in failed[0]
    assert [(e["done"], e["hostname"]) for e in custom] == [(7, app.hostname)]
    assert [t.name for _, t in state.tasks_by_time()] == [broken.name, progress.name]
    assert state.workers[NODE].hostname == NODE and state.task_types() == sorted(
        [broken.name, progress.name]
    )


def test_without_e_only_worker_events_until_set_task_events(make_app, redis_server):
    """As Celery's: a worker sends its worker events without -E; ``set_task_events`` (the
    ``enable_events`` remote control command) turns the task events on, then off."""
    from spinach_compat.events import worker as worker_events

    url = redis_server.url_for(8)
    app = make_app(broker=url, backend=url)

    @app.task
    def add(a, b):
        return a + b

    events = worker_events.WorkerEvents(app, NODE, tasks=False)
    with Capture(url, redis_server, 8) as capture:
        events.start()
        try:
            app.start_worker(concurrency=1, block=False)
            quiet = add.delay(1, 1)
            assert quiet.get(timeout=TIMEOUT) == 2
            assert wait_until(lambda: events.counter.processed == 1, TIMEOUT)  # its postrun ran
            assert worker_events.set_task_events(True) == 1
            loud = add.delay(2, 2)
            assert loud.get(timeout=TIMEOUT) == 4
            capture.wait_for(capture.ended(loud.id, "task-succeeded"))
            assert worker_events.set_task_events(False) == 1
            assert add.delay(3, 3).get(timeout=TIMEOUT) == 6
            assert worker_events.heartbeat_now() == 1
            capture.wait_for(lambda found: found[-1]["type"] == "worker-heartbeat")
        finally:
            app.stop_worker()
            events.shutdown()
        capture.wait_for(lambda found: found[-1]["type"] == "worker-offline")
    assert worker_events.set_task_events(True) == 0  # none runs any more
    tasks = {e["uuid"] for e in capture.events if e["type"].startswith("task-")}
    assert tasks == {loud.id} and capture.events[0]["type"] == "worker-online"
    assert capture.events[-1]["processed"] == 3


def test_buffered_events_keep_their_order_with_task_runs_grouped(make_app):
    """Runs of task events go as one message (``task.multi``), in order with the others."""
    from spinach_compat.events.dispatcher import EventDispatcher

    dispatcher = EventDispatcher(app=make_app(), hostname=NODE)
    sent: list[tuple[Any, str]] = []
    dispatcher._publish = lambda body, key: sent.append((body, key)) or True  # type: ignore[method-assign]
    types = ["worker-online", "task-received", "task-started", "worker-heartbeat",
             "task-succeeded"]  # fmt: skip
    assert dispatcher._publish_batch([{"type": t} for t in types])
    assert [(b["type"] if isinstance(b, dict) else [e["type"] for e in b], key)
            for b, key in sent] == [
        ("worker-online", "worker.online"),
        (["task-received", "task-started"], "task.multi"),
        ("worker-heartbeat", "worker.heartbeat"),
        ("task-succeeded", "task.succeeded"),
    ]  # fmt: skip


def test_an_event_that_cannot_be_encoded_names_its_task_and_cause(make_app, caplog):
    """``self.send_event`` with a value no serializer takes raises at the call, naming the
    event, the task and the cause; a worker's buffered event is logged and dropped."""
    from kombu.exceptions import EncodeError

    from spinach_compat.events.dispatcher import EventDispatcher

    app = make_app()
    unbuffered = EventDispatcher(app=app, hostname=NODE)
    with pytest.raises(EncodeError, match=r"'task-progress' of task id-7 from .*object"):
        unbuffered.send("task-progress", uuid="id-7", value=object())
    buffered = EventDispatcher(app=app, hostname=NODE, buffered=True)
    assert buffered._publish({"type": "task-progress", "uuid": "id-8", "value": object()}, "k")
    assert "'task-progress' of task id-8" in caplog.text and "dropped" in caplog.text
