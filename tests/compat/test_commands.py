"""Celery's sub-commands other than worker: status, control, call, result, report, shell,
and those refused (events, graph, ...), run as real processes against a real redis-server.

One facade worker serves the module. Where both can run without a worker, the output and
exit status are compared with real Celery's command on the same project.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

import spinach_compat
from spinach_compat.bin.celery import main
from spinach_compat.bin.report import MASK, bugreport

from ..helpers import wait_until
from .worker_process import ROOT, WorkerProcess

WAIT = 30.0
TASKS = "tests.compat.proj.tasks"
DB = 10

#: An app for the commands run in this process (those failing before any broker use).
memory_app = spinach_compat.Celery("mem", broker="memory://", set_as_current=False)


def run_here(capsys, *args: str) -> tuple[int, str, str]:
    """``spinach-compat -A <memory_app> ARGS`` in this process: status, stdout, stderr."""
    status = main(["-A", f"{__name__}:memory_app", *args])
    out, err = capsys.readouterr()
    return status, out, err


def run(url: str, *args: str, impl: str = "spinach_compat", stdin: str | None = None):
    """``python -m spinach_compat`` (or ``celery``) ``-A tests.compat.proj ARGS``."""
    env = {**os.environ, "PROJ_IMPL": impl, "PROJ_BROKER_URL": url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", impl, "-A", "tests.compat.proj", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, input=stdin, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def url(redis_server):
    url = redis_server.url_for(DB)
    with redis_server.client(db=DB) as client:
        client.flushdb()
    return url


@pytest.fixture(scope="module")
def worker(url, tmp_path_factory):
    log = tmp_path_factory.mktemp("commands") / "worker.log"
    process = WorkerProcess("spinach_compat", url, ["-c", "2", "-n", "cmd@%h"], log).start()
    yield process
    assert process.stop() == 0, process.describe()


@pytest.fixture(scope="module")
def app(url):
    return spinach_compat.Celery("proj", broker=url, backend=url, set_as_current=False)


# -- status --------------------------------------------------------------------------------


def test_status_lists_the_live_workers(url, worker):
    done = run(url, "status")
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("->")]
    assert line.startswith("->  cmd@") and line.endswith(": OK")
    assert done.stdout.endswith("\n1 node online.\n")
    as_json = run(url, "status", "--json")
    [(node, reply)] = json.loads(as_json.stdout.splitlines()[0]).items()
    assert node.startswith("cmd@") and reply == {"ok": "pong"}


def test_status_without_workers_fails_as_celery(capsys):
    status, out, err = run_here(capsys, "status")
    assert (status, out) == (69, "")
    assert err == "Error: No nodes replied within time constraint\n"


# -- call and result -------------------------------------------------------------------------


def test_call_prints_the_id_and_result_its_value(url, worker):
    done = run(url, "call", f"{TASKS}.add", "--args", "[2, 3]")
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    assert uuid.UUID(task_id)
    shown = run(url, "result", task_id)
    assert (shown.returncode, shown.stdout) == (0, "5\n")
    by_kwargs = run(url, "call", f"{TASKS}.add", "-k", '{"a": "x", "b": "y"}', "--countdown",
                    "0.1", "--expires", "60")  # fmt: skip
    assert run(url, "result", "-t", f"{TASKS}.add", by_kwargs.stdout.strip()).stdout == "xy\n"


def test_call_routes_to_the_queue_given(url, worker, app):
    done = run(url, "call", f"{TASKS}.add", "-a", "[1, 1]", "--queue", "nobody-consumes")
    assert done.returncode == 0, done.stderr
    assert app.engine.broker.queue_lengths().get("nobody-consumes") == 1
    assert app.control.purge(queues=["nobody-consumes"]) == 1


@pytest.mark.parametrize(
    ("option", "value"),
    [("--args", '{"a": 1}'), ("--kwargs", "[1]"), ("--args", "[1,"), ("--eta", "tomorrow")],
)
def test_call_with_bad_arguments_is_a_usage_error(capsys, option, value):
    with pytest.raises(SystemExit) as exited:
        run_here(capsys, "call", f"{TASKS}.add", option, value)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and option in err and "Traceback" not in err


def test_result_of_a_failed_task(url, worker):
    task_id = run(url, "call", f"{TASKS}.fail", "-a", '["boom"]').stdout.strip()
    done = run(url, "result", task_id)
    assert done.returncode == 1
    assert done.stderr.endswith(f"Error: task {task_id} raised ValueError: boom\n")
    traceback = run(url, "result", "--traceback", task_id)
    assert traceback.returncode == 0 and traceback.stdout.rstrip().endswith("ValueError: boom")


def test_result_of_an_unknown_task_name(capsys):
    status, _, err = run_here(capsys, "result", "-t", "no.such.task", "some-id")
    assert status == 2 and "no task named 'no.such.task'" in err


def test_call_and_result_print_as_celery(url):
    """Without a worker: ``call`` prints one id; ``result --traceback`` of an id with no
    traceback prints an empty line."""
    for impl in ("spinach_compat", "celery"):
        called = run(url, "call", f"{TASKS}.add", "-a", "[1, 2]", "--queue", "unconsumed",
                     impl=impl)  # fmt: skip
        assert called.returncode == 0 and uuid.UUID(called.stdout.strip()), (impl, called)
        shown = run(url, "result", "--traceback", str(uuid.uuid4()), impl=impl)
        assert (shown.returncode, shown.stdout) == (0, "\n"), (impl, shown)


# -- control -------------------------------------------------------------------------------


def test_control_revoke(url, worker, app):
    task_id = run(url, "call", f"{TASKS}.add", "-a", "[1, 1]", "--countdown", "60").stdout.strip()
    done = run(url, "control", "revoke", task_id)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("->  cmd@") and lines[0].endswith(": OK")
    assert lines[1] == f"        tasks {{'{task_id}'}} flagged as revoked"
    assert app.AsyncResult(task_id).state == "REVOKED"


def test_control_terminate_stops_a_running_task(url, worker, app):
    running = app.send_task(f"{TASKS}.spin", args=(WAIT,))
    assert wait_until(lambda: running.id in app.control.running_ids())
    done = run(url, "control", "--json", "terminate", "SIGKILL", running.id)
    assert done.returncode == 0, done.stderr
    [[(node, reply)]] = [list(item.items()) for item in json.loads(done.stdout)]
    assert node.startswith("cmd@") and reply == {"ok": f"terminate: {running.id}"}
    with pytest.raises(Exception, match="terminated"):
        running.get(timeout=WAIT)


def test_control_usage_errors(capsys):
    status, _, err = run_here(capsys, "control", "frobnicate")
    assert status == 2 and "Command frobnicate not recognized" in err
    status, _, err = run_here(capsys, "control", "terminate")
    assert status == 2 and "'terminate' takes arguments: <signal>" in err


# -- report, shell, refused ------------------------------------------------------------------


def test_report_masks_secrets():
    app = spinach_compat.Celery(
        "proj", broker="redis://:hunter2@localhost:6379/0",
        backend="redis://user:hunter2@localhost/1", set_as_current=False,
    )  # fmt: skip
    app.conf.update(
        aws_secret_access_key="hunter2", database_url="sqlite:///x", task_default_queue="emails",
        beat_schedule={"x": {"task": "t", "schedule": 3}},
    )  # fmt: skip
    report = bugreport(app)
    assert "hunter2" not in report
    assert f"aws_secret_access_key: '{MASK}'" in report and f"database_url: '{MASK}'" in report
    assert "task_default_queue: 'emails'" in report and "beat_schedule:" in report
    assert "spinach-queue:" in report and f"(Celery {spinach_compat.__version__} API)" in report
    assert "settings -> transport:redis results:redis://user:**@localhost/1" in report


def test_report_command(url):
    done = run(url, "report")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("software -> spinach-queue:")
    assert "include: \n    ('tests.compat.proj.tasks',)" in done.stdout


def test_shell_gives_the_app_and_its_tasks(url):
    code = "print(app is celery, app.main, Task.__name__, add.name)\nadd.delay\n"
    done = run(url, "shell", "--python", stdin=code)
    assert done.returncode == 0, done.stderr
    assert f"True proj Task {TASKS}.add" in done.stdout
    assert "Error" not in done.stderr and "Traceback" not in done.stderr


def test_shell_without_tasks(url):
    done = run(url, "shell", "--python", "-T", stdin="print('add' in dir())\n")
    assert "False" in done.stdout


@pytest.mark.parametrize("command", ["graph", "migrate", "upgrade", "amqp", "list",
                                     "logtool", "flower"])  # fmt: skip
def test_other_celery_commands_name_what_to_use(capsys, command):
    status, _, err = run_here(capsys, command, "-l", "info", "--whatever")
    assert status == 2
    assert err.startswith(f"Error: `{command}` is not a spinach_compat command: ")


def test_a_refused_command_loads_no_app(url):
    done = run(url, "graph", "-l", "info", impl="spinach_compat")
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_purge_prints_as_celery(redis_server):
    """The same prompt answer, lines and exit statuses as Celery's ``purge -Q``."""
    outputs = {}
    for impl, db in (("spinach_compat", DB), ("celery", DB + 1)):
        url = redis_server.url_for(db)
        client = pytest.importorskip(impl).Celery("proj", broker=url, set_as_current=False)
        for _ in range(2):
            client.send_task(f"{TASKS}.add", args=(1, 1), queue="to-purge")
        refused = run(url, "purge", "-Q", "to-purge", impl=impl, stdin="n\n")
        purged = run(url, "purge", "-Q", "to-purge,other", impl=impl, stdin="y\n")
        again = run(url, "purge", "-f", "-Q", "to-purge", impl=impl)
        outputs[impl] = [
            (refused.returncode, refused.stderr.strip().splitlines()[-1]),
            (purged.returncode, purged.stdout.rpartition("[y/N]: ")[2]),
            (again.returncode, again.stdout),
        ]
    assert outputs["spinach_compat"] == outputs["celery"] == [
        (1, "Aborted!"), (0, "Purged 2 messages from 2 known task queues.\n"),
        (0, "No messages purged from 1 queue.\n"),
    ]  # fmt: skip


def test_the_shim_still_refuses_celerys_command_modules():
    """The commands' modules are not named as Celery's: ``import celery.bin.multi`` under
    the shim stays a loud refusal, not a module without Celery's names."""
    code = (
        "import spinach_compat\nspinach_compat.install_as_celery()\n"
        "from spinach_compat.exceptions import UnsupportedFeature\n"
        "for name in ('multi', 'control', 'shell', 'call', 'result', 'purge'):\n"
        "    try:\n        __import__('celery.bin.' + name)\n"
        "    except UnsupportedFeature:\n        print('refused', name)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.stdout.split() == [w for n in ("multi", "control", "shell", "call", "result",
                                              "purge") for w in ("refused", n)]  # fmt: skip


@pytest.mark.parametrize(
    "reply",
    [{"ok": "pong"}, [], ["proj.add", "proj.mul"], {"ok": ["a", "b"]}, {"error": "boom"},
     {"total": {"proj.add": 2}, "pid": 42}, 3],
)  # fmt: skip
def test_inspect_replies_print_as_celery_s(reply):
    """The body of each node's reply, as Celery's CLI formats it (no colours)."""
    import celery
    from celery.bin.base import CLIContext
    from celery.utils.text import indent

    from spinach_compat.bin.celery import pretty_reply

    context = CLIContext(celery.Celery(set_as_current=False), True, None)
    status, body = context.pretty(reply)
    assert pretty_reply(reply) == (status, body)
    assert indent(body, 4)  # what both print under "->  node: STATUS"
