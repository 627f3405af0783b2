"""The ``spinach`` command, run as ``python -m spinach`` against the apps of tests/cli_apps."""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

import pytest

import spinach
from spinach import cli
from tests.support.processes import LogReader, StartedProcesses

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "cli_apps"
PROCESS_TIMEOUT = 60.0  #: seconds a CLI process gets before the test gives up on it
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) +[\w.]+ \[\d+/[\w-]+\] ",
    re.MULTILINE,
)


def _env(**extra: str) -> dict[str, str]:
    """The environment of a CLI process: spinach importable even when not installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_spinach(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m spinach ARGS`` in the apps directory until it exits."""
    return subprocess.run(
        [sys.executable, "-m", "spinach", *args],
        cwd=APPS,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )


StartWorker = Callable[..., tuple[subprocess.Popen, LogReader]]


@pytest.fixture
def start_worker() -> Iterator[StartWorker]:
    """Start ``python -m spinach worker ...`` processes; kill whatever still runs after."""
    processes = StartedProcesses()

    def start(*args: str, **env: str) -> tuple[subprocess.Popen, LogReader]:
        command = [sys.executable, "-m", "spinach", "worker", *args]
        return processes.start(command, cwd=APPS, env=_env(**env))

    yield start
    processes.end_all(PROCESS_TIMEOUT)


# -- worker ----------------------------------------------------------------------------


def test_worker_runs_the_jobs_and_logs_each_one():
    result = run_spinach("worker", "basic:spin", "--stop-when-queue-empty")

    assert result.returncode == 0, result.stderr
    log = result.stderr
    assert LOG_LINE.search(log), log  # time, level, logger, [pid/thread] on every record
    starting = r"INFO +spinach\.worker \[\d+/spinach-worker-\d\] Starting job \w+ of task"
    assert re.search(starting, log)
    assert len(re.findall(r"Starting job \w+ of task '(say|explode)', attempt 1", log)) == 3
    succeeded = re.findall(r"Finished job \w+ of task 'say' in [\d.]+ ms: succeeded", log)
    assert len(succeeded) == 2, log
    assert re.search(
        r"ERROR +spinach\.worker .* Finished job \w+ of task 'explode' in [\d.]+ ms: "
        r"failed after 1 attempt\(s\): ValueError: kaboom",
        log,
    ), log
    assert "5 ThreadWorkers on queue(s) spinach of namespace 'spinach'" in log
    assert re.search(r"Worker \w+ stopped", log)


def test_worker_takes_a_module_alone_and_asyncio_workers():
    result = run_spinach("worker", "aio", "--asyncio", "--stop-when-queue-empty")

    assert result.returncode == 0, result.stderr
    log = result.stderr
    assert "AsyncioWorkers" in log
    for n in (1, 2):
        assert f"nap {n} awaited on the event loop" in log
    assert len(re.findall(r"of task 'nap' in [\d.]+ ms: succeeded", log)) == 2, log


def test_worker_consumes_the_queues_given_in_priority_order():
    result = run_spinach(
        "worker", "priorities:spin", "-q", "high", "--queue", "low", "-t", "1",
        "--stop-when-queue-empty",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    started = re.findall(r"Starting job \w+ of task '(\w+)'", result.stderr)
    assert started == ["urgent", "urgent", "routine", "routine"]  # never 'elsewhere'
    assert "1 ThreadWorkers on queue(s) high, low" in result.stderr


def test_worker_namespace_option_replaces_the_engines():
    result = run_spinach(
        "worker", "basic", "--namespace", "elsewhere", "--threads", "2", "--stop-when-queue-empty"
    )

    assert result.returncode == 0, result.stderr
    assert "2 ThreadWorkers on queue(s) spinach of namespace 'elsewhere'" in result.stderr
    assert "/elsewhere-arbiter]" in result.stderr
    assert "Starting job" not in result.stderr  # the jobs wait in namespace 'spinach'


def test_sigterm_lets_the_running_job_finish(tmp_path, start_worker):
    process, log = start_worker("blocking:spin", CLI_TEST_DIR=str(tmp_path))
    assert log.contains("waiting for release"), log.text
    assert (tmp_path / "started").exists()

    process.send_signal(signal.SIGTERM)
    assert log.contains("stopping gracefully"), log.text
    (tmp_path / "release").touch()

    assert process.wait(PROCESS_TIMEOUT) == 0, log.text
    log.join()
    text = log.text
    assert "Received SIGTERM: stopping gracefully" in text
    finished = re.search(r"Finished job \w+ of task 'hold' in [\d.]+ (ms|s): succeeded", text)
    assert finished, text
    assert text.index("Received SIGTERM") < finished.start()
    assert re.search(r"Worker \w+ stopped", text[finished.end() :])


def test_a_second_sigint_exits_at_once(tmp_path, start_worker):
    process, log = start_worker("blocking:spin", CLI_TEST_DIR=str(tmp_path))
    assert log.contains("waiting for release"), log.text
    process.send_signal(signal.SIGINT)
    assert log.contains("stopping gracefully"), log.text

    process.send_signal(signal.SIGINT)
    assert process.wait(PROCESS_TIMEOUT) == cli.EXIT_INTERRUPTED, log.text
    log.join()
    assert "Received SIGINT again: exiting at once" in log.text
    assert "Finished job" not in log.text


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("app.tasks", "cannot import module 'app.tasks': No module named 'app'"),
        ("broken", "cannot import module 'broken': RuntimeError: configuration missing"),
        ("basic:nope", "module 'basic' has no attribute 'nope'"),
        ("not_engine:spin", "'not_engine:spin' is a Tasks, not a spinach Engine"),
        ("not_engine", "module 'not_engine' has no Engine named 'spin' or 'engine'"),
        ("basic:", "invalid application 'basic:'"),
    ],
)
def test_worker_reports_an_app_it_cannot_load(app, message):
    result = run_spinach("worker", app)

    assert result.returncode == 2
    assert result.stderr.startswith(f"spinach: {message}"), result.stderr
    assert result.stderr.count("\n") == 1  # one line, no traceback
    assert result.stdout == ""


def test_a_loading_error_shows_its_traceback_at_debug_level():
    result = run_spinach("worker", "broken", "--log-level", "debug")

    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert 'broken.py", line' in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("spinach: cannot import module 'broken': RuntimeError")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: COMMAND"),
        (("worker", "basic", "--threads", "0"), "must be 1 or more, not 0"),
        (("worker", "basic", "--log-level", "loud"), "invalid choice: 'loud'"),
        (("dead-letters", "list"), "the following arguments are required: MODULE[:ATTR]"),
    ],
)
def test_usage_errors_exit_with_status_2(args, message):
    result = run_spinach(*args)

    assert result.returncode == 2
    assert message in result.stderr


def test_version():
    result = run_spinach("--version")

    assert result.returncode == 0
    assert result.stdout == f"spinach {spinach.__version__}\n"


def test_worker_help_explains_the_app_argument():
    result = run_spinach("worker", "--help")

    assert result.returncode == 0
    assert "'spin' or 'engine'" in result.stdout
    for option in ("--queue", "--threads", "--namespace", "--stop-when-queue-empty", "--asyncio"):
        assert option in result.stdout


def test_load_engine_puts_the_current_directory_first(monkeypatch):
    monkeypatch.chdir(APPS)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(APPS))])
    monkeypatch.delitem(sys.modules, "basic", raising=False)
    try:
        engine = cli.load_engine("basic")
    finally:
        module = sys.modules.pop("basic", None)

    assert sys.path[0] == str(APPS)
    assert module is not None
    assert engine is module.spin


# -- dead letters ----------------------------------------------------------------------

POISON = "tests.cli_apps.poison:spin"


@pytest.fixture
def poison(monkeypatch) -> ModuleType:
    """The poison app, freshly imported, after a worker run that dead-letters its bad job."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI may put the cwd in front
    module = importlib.reload(importlib.import_module("tests.cli_apps.poison"))
    module.spin.start_workers(number=1, block=False, stop_when_queue_empty=True)
    assert module.spin.wait_until_stopped(PROCESS_TIMEOUT)
    return module


def _letters(module: ModuleType) -> dict[str, spinach.DeadLetter]:
    return {letter.id: letter for letter in module.broker.list_dead_letters()}


def test_dead_letters_list(poison, capsys):
    assert cli.main(["dead-letters", "list", POISON]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    by_id = {line.split()[0]: line for line in lines}
    unknown = by_id["unknown-task"]
    assert unknown.startswith("unknown-task  spinach  ")
    assert "unknown task 'no.such.task' (registered tasks: ok)" in unknown
    assert unknown.endswith("...")  # the payload is cut
    failed_at = unknown.split()[2]
    assert datetime.fromisoformat(failed_at).tzinfo == timezone.utc
    assert "payload has no 'task_name' field" in by_id["no-fields"]
    assert any(line.endswith("not json at all") for line in lines)


def test_dead_letters_list_json_and_ids(poison, capsys):
    assert cli.main(["dead-letters", "list", POISON, "--json", "--id", "no-fields"]) == 0

    letters = json.loads(capsys.readouterr().out)
    assert [letter["id"] for letter in letters] == ["no-fields"]
    assert letters[0]["payload"] == '{"id": "no-fields"}'
    assert letters[0]["queue"] == spinach.DEFAULT_QUEUE
    assert datetime.fromisoformat(letters[0]["failed_at"]).tzinfo == timezone.utc


def test_dead_letters_retry_some(poison, capsys):
    assert cli.main(["dead-letters", "retry", POISON, "--id", "unknown-task"]) == 0

    out = capsys.readouterr().out
    assert out == "Re-enqueued 1 dead letter(s) of namespace 'spinach'\n"
    remaining = _letters(poison)
    assert len(remaining) == 2
    assert "no-fields" in remaining
    assert "unknown-task" not in remaining
    assert poison.broker.queue_lengths() == {spinach.DEFAULT_QUEUE: 1}


def test_dead_letters_retry_all_as_json(poison, capsys):
    assert cli.main(["dead-letters", "retry", POISON, "--json"]) == 0

    assert json.loads(capsys.readouterr().out) == {"retried": 3, "not_found": 0}
    assert _letters(poison) == {}
    assert poison.broker.queue_lengths() == {spinach.DEFAULT_QUEUE: 3}


def test_dead_letters_purge(poison, capsys):
    args = ["dead-letters", "purge", POISON, "--id", "no-fields", "--id", "missing"]
    assert cli.main(args) == 0
    assert capsys.readouterr().out == (
        "Purged 1 dead letter(s) of namespace 'spinach' (1 of the given ids not found)\n"
    )
    assert cli.main(["dead-letters", "purge", POISON]) == 0
    assert capsys.readouterr().out == "Purged 2 dead letter(s) of namespace 'spinach'\n"

    assert cli.main(["dead-letters", "list", POISON]) == 0
    assert capsys.readouterr().out == "No dead letters in namespace 'spinach'\n"
    assert poison.broker.queue_lengths() == {}


def test_dead_letters_of_another_namespace(poison, capsys):
    assert cli.main(["dead-letters", "list", POISON, "--namespace", "other"]) == 0

    assert capsys.readouterr().out == "No dead letters in namespace 'other'\n"


def test_dead_letters_list_in_a_fresh_process():
    result = run_spinach("dead-letters", "list", "poison", "--json")

    assert result.returncode == 0, result.stderr
    letters = json.loads(result.stdout)
    reasons = sorted(letter["reason"] for letter in letters)
    assert len(reasons) == 2
    assert reasons[0] == "payload has no 'task_name' field"
    assert reasons[1].startswith("payload is not valid JSON")


def test_format_dead_letter_keeps_one_line():
    letter = spinach.DeadLetter("x", "q", "line one\nline two\t" + "z" * 100, "why\n", 0.0)

    line = cli.format_dead_letter(letter)

    assert "\n" not in line
    assert line.startswith("x  q  1970-01-01T00:00:00+00:00  why\\n  line one\\nline two\\t")
    assert line.endswith("...")
    assert len(line.split("  ")[-1]) == cli.PAYLOAD_WIDTH


# -- periodic tasks --------------------------------------------------------------------


PERIODIC = "tests.cli_apps.periodic:spin"


@pytest.fixture
def periodic(monkeypatch) -> ModuleType:
    """The periodic app, freshly imported."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI may put the cwd in front
    return importlib.reload(importlib.import_module("tests.cli_apps.periodic"))


def test_periodic_list(periodic, capsys):
    assert cli.main(["periodic", "list", PERIODIC, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(e["task"], e["next_run"]) for e in listed] == [
        ("gone", 1_700_000_000.0),
        ("tick", 1_700_000_000.0),
    ]
    assert cli.main(["periodic", "list", PERIODIC]) == 0
    assert "tick  next run 2023-11-14T22:13:20.000+00:00" in capsys.readouterr().out


def test_periodic_remove_a_task_whose_code_is_gone(periodic, capsys):
    assert cli.main(["periodic", "remove", PERIODIC, "gone", "never-was"]) == 0
    out = capsys.readouterr().out
    assert out == (
        "Removed 1 periodic task(s) of namespace 'spinach'; not periodic there: never-was\n"
    )
    assert [name for _, name in periodic.broker.inspect_periodic_tasks()] == ["tick"]


def test_periodic_remove_refuses_a_task_still_periodic_in_the_code(periodic, capsys):
    assert cli.main(["periodic", "remove", PERIODIC, "tick"]) == cli.EXIT_USAGE
    assert "still periodic in this application's code" in capsys.readouterr().err
    assert len(periodic.broker.inspect_periodic_tasks()) == 2
