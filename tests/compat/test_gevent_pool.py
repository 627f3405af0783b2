"""``spinach-compat worker -P gevent``: jobs as greenlets of one monkey-patched process.

The project is written to the test's directory. Jobs say they started by counting in Redis
and then wait, blocked in Redis (``BLPOP``) or in ``time.sleep`` (both patched by gevent),
until the test releases them: 200 jobs counted while none has ended proves 200 run at once,
without timing anything. The worker runs as ``python -m spinach_compat_cli`` (what the
``spinach-compat`` console script runs), which patches before anything is imported.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.helpers import wait_until
from tests.support.processes import LogReader, StartedProcesses

pytest.importorskip("gevent")  # the test extras install it: spinach-queue[gevent]

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0  #: seconds a process or a result gets before the test gives up
URL_VARIABLE = "GEVENT_TEST_URL"

APP = f'''"""Jobs count that they started in Redis, then wait to be released."""
import os
import time

import redis

from spinach_compat import Celery, signals

URL = os.environ["{URL_VARIABLE}"]
# hundreds of greenlets each hold a connection while blocked: no pool limit, no timeout
client = redis.Redis.from_url(URL, max_connections=10_000, socket_timeout=None)
app = Celery("gevent_app", broker=URL, backend=URL)
app.conf.update(broker_connection_retry_on_startup=True)
if os.environ.get("GEVENT_TEST_SETTING"):
    app.conf.worker_pool = "gevent"


@app.task(name="hold")
def hold(token):
    client.incr("started")
    if client.blpop(["release"], timeout=60) is None:
        raise TimeoutError("never released")
    return token


@app.task(name="nap", soft_time_limit=0.2)
def nap():
    """Sleeps (a patched time.sleep) until its soft limit strikes, and says so."""
    client.incr("started")
    try:
        time.sleep(60)
    except Exception as exc:
        client.rpush("caught", type(exc).__name__)
        raise


@app.task(name="stuck", time_limit=0.2)
def stuck():
    client.incr("started")
    client.blpop(["never"], timeout=60)


@signals.worker_ready.connect
def _ready(sender=None, **kwargs):
    os.write(1, b"GEVENT-READY\\n")
'''

Start = Callable[..., tuple[subprocess.Popen, LogReader]]


@pytest.fixture
def project(tmp_path: Path, redis_url: str) -> Iterator[Start]:
    """Start ``python -m spinach_compat_cli -A gevent_app worker ARGS``; clean up after."""
    (tmp_path / "gevent_app.py").write_text(APP)
    processes = StartedProcesses()

    def start(
        *args: str, env: dict[str, str] | None = None, ready: bool = True,
        module: str = "spinach_compat_cli",
    ) -> tuple[subprocess.Popen, LogReader]:  # fmt: skip
        environ = {**os.environ, URL_VARIABLE: redis_url, **(env or {})}
        environ["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
        command = [sys.executable, "-m", module, "-A", "gevent_app", "worker", *args]
        process, log = processes.start(command, cwd=tmp_path, env=environ)
        if ready:
            log.wait_for("GEVENT-READY")
        return process, log

    yield start
    processes.end_all(TIMEOUT)


@pytest.fixture
def app(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch):
    """The project's app in the test process (unpatched), to send tasks and read results."""
    monkeypatch.setenv(URL_VARIABLE, redis_url)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "gevent_app.py").write_text(APP)
    import gevent_app

    yield gevent_app.app
    sys.modules.pop("gevent_app", None)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as connection:
        yield connection


def _started(client: redis.Redis) -> int:
    return int(client.get("started") or 0)


def _stop(process: subprocess.Popen, log: LogReader) -> int:
    process.send_signal(signal.SIGTERM)
    status = process.wait(TIMEOUT)
    log.join()
    return status


def test_200_greenlets_run_200_jobs_at_once(project, app, client):
    process, log = project("-P", "gevent", "-c", "200", "-l", "info")
    results = [app.send_task("hold", args=(i,)) for i in range(200)]

    assert wait_until(lambda: _started(client) >= 200, TIMEOUT), _started(client)
    client.rpush("release", *range(200))

    assert sorted(r.get(timeout=TIMEOUT) for r in results) == list(range(200))
    assert "200 (gevent: one process, one task per greenlet" in log.text  # the banner
    assert "200 GeventWorkers" in log.text
    [stats] = app.control.inspect(timeout=TIMEOUT).stats().values()
    assert stats["pool"] == {"implementation": "celery.concurrency.gevent:TaskPool",
                             "max-concurrency": 200}  # fmt: skip
    assert stats["total"] == {"hold": 200}
    assert _stop(process, log) == 0
    assert "Traceback" not in log.text


def test_time_limits_and_terminate_strike_inside_the_greenlet(project, app, client):
    """Soft: SoftTimeLimitExceeded raised in the task, out of its sleep. Hard: the task,
    blocked in Redis, fails with TimeLimitExceeded. Terminate: a job blocked in Redis is
    stopped and REVOKED. Each while other greenlets keep running."""
    process, log = project("-P", "gevent", "-c", "10", "-l", "info")
    soft, hard = app.send_task("nap"), app.send_task("stuck")
    held = app.send_task("hold", args=("held",))
    with pytest.raises(Exception) as soft_error:
        soft.get(timeout=TIMEOUT)
    assert soft_error.typename == "SoftTimeLimitExceeded"
    assert client.lrange("caught", 0, -1) == [b"SoftTimeLimitExceeded"]
    with pytest.raises(Exception) as hard_error:
        hard.get(timeout=TIMEOUT)
    assert hard_error.typename == "TimeLimitExceeded"
    assert wait_until(lambda: _started(client) >= 3, TIMEOUT)

    held.revoke(terminate=True)
    assert wait_until(lambda: held.state == "REVOKED", TIMEOUT), held.state
    log.wait_for(rf"Finished job {held.id} of task 'hold'")  # out of its BLPOP: ended
    other = app.send_task("hold", args=("after",))  # the pool goes on
    client.rpush("release", "x")
    assert other.get(timeout=TIMEOUT) == "after"
    assert _stop(process, log) == 0


def test_sigterm_waits_for_running_jobs_and_loses_none(project, app, client):
    """Five jobs run when SIGTERM comes: the worker waits for them and exits 0; the jobs it
    did not run stay queued and a second worker runs them, each job once (the delivery
    guarantee). Twenty releases are pushed at once, so that a job fetched while the stop
    was under way cannot hold the worker."""
    process, log = project("-P", "gevent", "-c", "5")
    results = [app.send_task("hold", args=(i,)) for i in range(20)]
    assert wait_until(lambda: _started(client) >= 5, TIMEOUT)

    process.send_signal(signal.SIGTERM)
    log.wait_for("warm shutdown")
    client.rpush("release", *range(20))
    assert process.wait(TIMEOUT) == 0

    second, second_log = project("-P", "gevent", "-c", "20")
    assert sorted(r.get(timeout=TIMEOUT) for r in results) == list(range(20))
    assert _started(client) == 20  # each ran once
    assert client.llen("release") == 0
    assert _stop(second, second_log) == 0


def test_worker_pool_setting_runs_the_command_again_patched(project, app, client):
    """``worker_pool='gevent'`` is read after the imports: the command starts again with
    ``-P gevent``, patched first (here even from ``python -m spinach_compat``)."""
    process, log = project("-c", "3", env={"GEVENT_TEST_SETTING": "1"}, module="spinach_compat")
    assert "3 (gevent: one process, one task per greenlet" in log.text
    result = app.send_task("hold", args=("x",))
    client.rpush("release", "x")
    assert result.get(timeout=TIMEOUT) == "x"
    assert _stop(process, log) == 0


@pytest.mark.parametrize(
    ("module", "args", "status", "message"),
    [
        ("spinach_compat_cli", ["-c", "0"], 2, "-c/--concurrency: must be 1 or more, not 0"),
        ("spinach_compat", [], 2, "run the spinach-compat command, or python -m "
         "spinach_compat_cli"),
    ],
)  # fmt: skip
def test_bad_gevent_commands_are_clear_errors(project, module, args, status, message):
    process, log = project("-P", "gevent", *args, ready=False, module=module)
    assert process.wait(TIMEOUT) == status
    log.join()
    assert message in log.text
    assert "Traceback" not in log.text


def test_missing_gevent_names_the_extra(project, tmp_path):
    """A ``gevent`` that cannot be imported (here a stand-in raising ImportError)."""
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "gevent.py").write_text("raise ImportError('no gevent here')\n")
    environ = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "spinach_compat_cli", "-A", "gevent_app", "worker", "-P",
         "gevent"], cwd=tmp_path, env={**os.environ, **environ}, capture_output=True,
        text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 1
    assert "pip install 'spinach-queue[gevent]'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("argv", "pool"),
    [
        (["-A", "p", "worker", "-P", "gevent"], "gevent"),
        (["-A", "p", "worker", "--pool=gevent", "-c", "5"], "gevent"),
        (["-A", "p", "worker", "-Pgevent"], "gevent"),
        (["-A", "p", "worker", "--pool", "threads"], "threads"),
        (["-A", "p", "worker", "-P"], None),
        (["-A", "p", "worker"], None),
    ],
)
def test_the_pool_is_read_from_the_command_line_before_any_import(argv, pool):
    import spinach_compat_cli

    assert spinach_compat_cli.pool_option(argv) == pool


def test_the_console_script_without_gevent_exits_1(monkeypatch, capsys):
    import spinach_compat_cli

    monkeypatch.setitem(sys.modules, "gevent", None)  # import gevent raises ImportError
    monkeypatch.setitem(sys.modules, "gevent.monkey", None)
    assert spinach_compat_cli.main(["-A", "proj", "worker", "-P", "gevent"]) == 1
    assert "pip install 'spinach-queue[gevent]'" in capsys.readouterr().err
