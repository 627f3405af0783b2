"""``tests.compat.proj`` run by real worker processes against a real redis-server.

Tests taking ``proj`` run twice: on ``python -m spinach_compat -A tests.compat.proj worker``
(its default pool, prefork: three child processes) and on a real Celery 5 worker
(``celery -A tests.compat.proj worker -P threads``) of the
same project, each on its own Redis db, and assert the same observable outcomes. One worker
per implementation serves the whole module (Celery's starts slowly). Tests without ``proj``
exercise the facade only: time limits (Celery's thread pool does not enforce them), the
command line, revocations surviving a restart, beat.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from ..helpers import wait_until
from .worker_process import WorkerProcess, project_worker, run_command

WAIT = 30.0
TASKS = "tests.compat.proj.tasks"
DBS = {"spinach_compat": 5, "celery": 6}


def _client(impl: str, url: str):
    if impl == "celery":
        celery = pytest.importorskip("celery")
        return celery.Celery("proj", broker=url, backend=url, set_as_current=False)
    import spinach_compat

    return spinach_compat.Celery("proj", broker=url, backend=url, set_as_current=False)


@pytest.fixture(scope="module", params=["spinach_compat", "celery"])
def proj(request, redis_server, tmp_path_factory):
    """A worker of the project (facade, then real Celery) and a client app."""
    impl = request.param
    log = tmp_path_factory.mktemp(impl) / "worker.log"
    args = ["-c", "3", "-l", "info", "-n", f"{impl}@%h"]
    with project_worker(impl, redis_server, DBS[impl], log, args) as (worker, url):
        app = _client(impl, url)
        yield SimpleNamespace(impl=impl, url=url, worker=worker, app=app)


def _send(proj, name: str, *args, **options):
    return proj.app.send_task(f"{TASKS}.{name}", args=args, **options)


def _exception_of(result) -> BaseException:
    with pytest.raises(Exception) as info:
        result.get(timeout=WAIT)
    return info.value


# -- the same outcomes on both -------------------------------------------------------------


def test_value_and_state(proj):
    result = _send(proj, "add", 2, 3)
    assert result.get(timeout=WAIT) == 5
    assert (result.state, result.successful(), result.ready()) == ("SUCCESS", True, True)


def test_failure_type_state_and_traceback(proj):
    result = _send(proj, "fail", "boom")
    exc = _exception_of(result)
    assert type(exc).__name__ == "ValueError" and exc.args == ("boom",)
    assert result.state == "FAILURE" and result.failed()
    assert "ValueError" in result.traceback


def test_group_members_know_their_group_and_position(proj):
    canvas = pytest.importorskip("celery" if proj.impl == "celery" else "spinach_compat")
    member = proj.app.signature(f"{TASKS}.membership")
    result = canvas.group(member.clone() for _ in range(3)).apply_async()
    assert result.get(timeout=WAIT) == [[result.id, index] for index in range(3)]
    assert _send(proj, "membership").get(timeout=WAIT) == [None, None]


def test_retry_counts(proj):
    assert _send(proj, "flaky", 2).get(timeout=WAIT) == 2
    assert _send(proj, "auto").get(timeout=WAIT) == 2
    exhausted = _send(proj, "always_retry")
    assert type(_exception_of(exhausted)).__name__ == "MaxRetriesExceededError"
    assert exhausted.state == "FAILURE"


def test_countdown_never_starts_early(proj):
    sent = time.time()
    ran = _send(proj, "stamp", countdown=1.5).get(timeout=WAIT)
    assert ran >= sent + 1.5


def test_eta_never_starts_early(proj):
    eta = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    ran = _send(proj, "stamp", eta=eta).get(timeout=WAIT)
    assert ran >= eta.timestamp()


def test_revoked_task_never_runs(proj):
    revoked = _send(proj, "add", 1, 1, countdown=1)
    proj.app.control.revoke(revoked.id)
    sentinel = _send(proj, "add", 2, 2, countdown=2)  # due after the revoked one
    assert sentinel.get(timeout=WAIT) == 4
    assert type(_exception_of(revoked)).__name__ == "TaskRevokedError"
    assert revoked.state == "REVOKED"


def test_an_unregistered_task_fails_with_not_registered_at_once(proj):
    """Celery's worker stores FAILURE(NotRegistered) for an unknown name: get() raises."""
    result = proj.app.send_task(f"{TASKS}.no_such_task", args=(1,))
    exc = _exception_of(result)
    assert type(exc).__name__ == "NotRegistered"
    assert f"{TASKS}.no_such_task" in str(exc)
    assert result.state == "FAILURE"


def test_inspect_ping_and_registered(proj):
    # limit=1: the module's worker is the only one on its db, and Celery's client would
    # otherwise wait the whole timeout for more replies
    inspect = proj.app.control.inspect(timeout=5, limit=1)
    [(node, reply)] = inspect.ping().items()
    assert node.startswith(f"{proj.impl}@") and reply == {"ok": "pong"}
    registered = inspect.registered()[node]
    assert f"{TASKS}.add" in registered and f"{TASKS}.flaky" in registered


def test_broadcast_replies(proj):
    control = proj.app.control
    # limit=1: one worker replies; Celery's client would otherwise wait the whole timeout
    [(node, pong)] = control.broadcast("ping", reply=True, timeout=5, limit=1)[0].items()
    assert node.startswith(f"{proj.impl}@") and pong == {"ok": "pong"}
    result = _send(proj, "add", 1, 1, countdown=60)
    replies = control.broadcast("revoke", {"task_id": result.id}, reply=True, timeout=5,
                                limit=1)  # fmt: skip
    assert replies == [{node: {"ok": f"tasks {{'{result.id}'}} flagged as revoked"}}]
    assert control.broadcast("ping") is None  # no reply asked


# -- the facade only -----------------------------------------------------------------------


@pytest.fixture
def facade(proj):
    if proj.impl != "spinach_compat":
        pytest.skip("facade only: time limits (not enforced by Celery -P threads), CLI, beat")
    return proj


def test_banner(facade):
    banner = facade.worker.banner
    for expected in ("spinach_compat@", "transport:   redis://127.0.0.1", "results:", "[queues]",
                     ".> celery", "concurrency: 3 (prefork: child processes, one task each)",
                     f". {TASKS}.add"):  # fmt: skip
        assert expected in banner


def test_soft_time_limit_raises_inside_the_task(facade):
    assert _send(facade, "soft_limited").get(timeout=WAIT) == "cleaned up"


def test_hard_time_limit_fails_the_task(facade):
    for result in (_send(facade, "hard_limited"), _send(facade, "swallow_hard", time_limit=0.5)):
        exc = _exception_of(result)
        assert type(exc).__name__ == "TimeLimitExceeded" and exc.args == (0.5,)
        assert result.state == "FAILURE"
    assert _send(facade, "add", 1, 2).get(timeout=WAIT) == 3  # the slots were freed


def test_terminate_stops_a_running_task(facade):
    running = _send(facade, "spin", WAIT)
    inspect = facade.app.control.inspect()

    def active() -> list[str]:
        return [task["id"] for tasks in (inspect.active() or {}).values() for task in tasks]

    assert wait_until(lambda: running.id in active())  # fetched...
    started = f"Starting job {running.id}"  # ...and started, not only fetched (then: revoked)
    assert wait_until(lambda: started in facade.worker.log.read_text(errors="replace"))
    facade.app.control.revoke(running.id, terminate=True, signal="SIGKILL")
    exc = _exception_of(running)
    assert type(exc).__name__ == "TaskRevokedError" and exc.args == ("terminated",)
    assert running.state == "REVOKED"
    assert _send(facade, "add", 2, 2).get(timeout=WAIT) == 4
    assert wait_until(lambda: running.id not in active())
    assert f"Terminating {TASKS}.spin[{running.id}] (signal 9)" in facade.worker.log.read_text()


def test_inspect_ping_command(facade):
    done = run_command(facade.url, "inspect", "ping")
    assert done.returncode == 0, done.stderr
    assert "spinach_compat@" in done.stdout and "pong" in done.stdout
    assert "1 node online." in done.stdout
    stats = run_command(facade.url, "inspect", "stats", "--json")
    [reply] = json.loads(stats.stdout).values()
    pool = reply["pool"]  # the default pool: prefork, three children of one job each
    assert pool["max-concurrency"] == 3
    assert pool["implementation"] == "celery.concurrency.prefork:TaskPool"
    assert len(set(pool["processes"])) == 3


def test_purge_command_discards_waiting_tasks(facade):
    for _ in range(3):
        _send(facade, "add", 1, 1, queue="idle")
    done = run_command(facade.url, "purge", "-f", "-Q", "idle")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Purged 3 messages from 1 known task queue."
    again = run_command(facade.url, "purge", "-Q", "idle", stdin="yes\n")
    assert "No messages purged from 1 queue." in again.stdout


@pytest.mark.parametrize(
    ("flag", "named"),
    [(["-P", "eventlet"], "-P eventlet"), (["-P", "thread-pool"], "unknown pool")],
)  # fmt: skip
def test_unsupported_worker_flags_exit_with_a_clear_error(facade, flag, named):
    done = run_command(facade.url, "worker", *flag)
    assert done.returncode == 2
    assert named in done.stderr and "migration_guide/" in done.stderr


def test_revocation_survives_a_worker_restart(facade, tmp_path):
    revoked = _send(facade, "add", 5, 5, queue="restart")  # no worker consumes it yet
    revoked.revoke()
    args = ["-Q", "restart", "-c", "1", "-l", "info", "-n", "late@%h"]
    late = WorkerProcess("spinach_compat", facade.url, args, tmp_path / "late.log").start()
    try:
        assert _send(facade, "add", 6, 6, queue="restart").get(timeout=WAIT) == 12
    finally:
        assert late.stop() == 0
    assert revoked.state == "REVOKED"
    assert "revoked: discarded" in late.log.read_text()


def test_beat_schedule_runs_on_the_worker(redis_server, tmp_path):
    url = redis_server.url_for(7)
    with redis_server.client(db=7) as client:
        client.flushdb()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.psubscribe("{proj}/result/*")
        args = ["-B", "-c", "2", "-s", str(tmp_path / "schedule"), "-l", "info"]
        worker = WorkerProcess("spinach_compat", url, args, tmp_path / "beat.log",
                               beat=True).start()  # fmt: skip
        try:
            keys = _published_keys(pubsub, 2)
        finally:
            pubsub.close()
            assert worker.stop() == 0
        metas = [json.loads(client.get(key)) for key in keys]
    assert [(m["status"], m["result"]) for m in metas] == [("SUCCESS", "beat")] * 2
    assert "beat:        on (1 entries)" in worker.banner
    log = worker.log.read_text()
    assert log.count("beat: Starting") == 1, log  # one for the pool, not one per child


def test_a_bad_beat_scheduler_stops_a_prefork_worker_before_its_children(redis_server):
    done = run_command(redis_server.url_for(7), "worker", "-B", "--scheduler", "nope.Scheduler")
    assert done.returncode == 1
    assert "ERROR: " in done.stderr and "nope.Scheduler" in done.stderr
    assert "starting" not in done.stderr  # no child was started


def _published_keys(pubsub, count: int) -> list[str]:
    keys: list[str] = []
    deadline = time.monotonic() + WAIT
    while len(keys) < count and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=deadline - time.monotonic())
        if message and message["channel"].decode() not in keys:
            keys.append(message["channel"].decode())
    assert len(keys) == count, keys
    return keys
