"""Celery's testing API on the facade: a project's own pytest suite, on Celery and on us.

``testing_proj`` is a small Celery project whose tests use ``celery.contrib.pytest`` and
``celery.contrib.testing`` only. It runs three times, each in a pytest subprocess of its
own: unchanged on real Celery (``-p celery.contrib.pytest``), and on spinach_compat with
``import celery`` giving the facade (``install_as_celery()``), with ``-p
spinach_compat.contrib.pytest`` and with the unchanged ``-p celery.contrib.pytest``. Every
test must end the same way in all three.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import spinach_compat
from spinach_compat import _state
from spinach_compat.contrib.testing.app import TestApp, set_trap, setup_default_app
from spinach_compat.contrib.testing.manager import Manager
from spinach_compat.contrib.testing.worker import start_worker
from spinach_compat.exceptions import UnsupportedFeature
from tests.support.redis_server import free_port

PROJECT = Path(__file__).parent / "testing_proj"

#: Seconds a project's suite may take (Celery's test workers take seconds to stop).
SUITE_TIMEOUT = 110.0

#: The suite's expected outcomes (on both): everything passes but the misused fixture.
EXPECTED_ERRORS = {"test_shop.py::TestMisuse::test_a_worker_without_an_app_is_an_error"}

_ON_FACADE = (
    "import sys, spinach_compat; spinach_compat.install_as_celery(); import pytest; "
    "sys.exit(pytest.main(sys.argv[1:]))"
)
_OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+)", re.MULTILINE)


#: Variables of this process that would change how a suite runs (the Django project of
#: other tests sets ``DJANGO_SETTINGS_MODULE`` process-wide: Celery's fix-up would load it).
_NOT_INHERITED = ("NO_WORKER", "DJANGO_SETTINGS_MODULE", "SPINACH_AS_CELERY", "WORKER_LOGLEVEL")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith("PYTEST_") and k not in _NOT_INHERITED}  # fmt: skip


def _start_suite(impl: str, plugin: str) -> subprocess.Popen:
    """The project's suite on ``impl`` ('celery', or 'facade': under the import shim),
    with the fixtures of the plugin module ``plugin``."""
    env = _clean_env()
    if impl == "celery":
        command = [sys.executable, "-m", "pytest"]
    else:
        command = [sys.executable, "-c", _ON_FACADE]
    return subprocess.Popen(
        [*command, "-p", plugin, "-q", "-rA", "-p", "no:cacheprovider"], cwd=PROJECT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _outcomes(process: subprocess.Popen) -> tuple[dict[str, str], str]:
    output, _ = process.communicate(timeout=SUITE_TIMEOUT)
    return {test: outcome for outcome, test in _OUTCOME.findall(output)}, output


def test_a_projects_suite_ends_the_same_on_celery_and_on_the_facade() -> None:
    """On the facade with its plugin named, and with Celery's (the shim gives ours)."""
    pytest.importorskip("celery")
    runs = [
        _start_suite("celery", "celery.contrib.pytest"),
        _start_suite("facade", "spinach_compat.contrib.pytest"),
        _start_suite("facade", "celery.contrib.pytest"),
    ]  # side by side
    (on_celery, celery_out), *on_facade = [_outcomes(run) for run in runs]
    for outcomes, output in on_facade:
        assert outcomes == on_celery, (celery_out[-3000:], output[-3000:])
        assert "the celery worker fixtures need an app, got None" in output
    errors = {test for test, outcome in on_celery.items() if outcome != "PASSED"}
    assert errors == EXPECTED_ERRORS, celery_out[-3000:]
    assert len(on_celery) == 10


# -- the plugin is enabled only when asked ---------------------------------------------------

_USES_A_FIXTURE = textwrap.dedent(
    """
    def test_app(celery_app):
        assert celery_app.conf.broker_url == "memory://"
    """
)


def test_installing_the_package_enables_no_fixture(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(_USES_A_FIXTURE)
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=SUITE_TIMEOUT, env=_clean_env(),
    )  # fmt: skip
    assert process.returncode == 1, process.stdout
    assert "fixture 'celery_app' not found" in process.stdout


@pytest.mark.parametrize(
    "how", [["-p", "spinach_compat.contrib.pytest"], ["-o", "spinach_compat_fixtures=true"]]
)
def test_the_fixtures_load_when_asked(tmp_path: Path, how: list[str]) -> None:
    (tmp_path / "test_x.py").write_text(_USES_A_FIXTURE)
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *how, str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=SUITE_TIMEOUT, env=_clean_env(),
    )  # fmt: skip
    assert process.returncode == 0, process.stdout


# -- start_worker, in this process --------------------------------------------------------


@pytest.fixture(autouse=True)
def task_logger_level():
    """Put back the level start_worker sets on the task logger (as Celery's does)."""
    logger = logging.getLogger("celery.task")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture
def test_app():
    app = TestApp()
    with setup_default_app(app):
        yield app


def test_start_worker_on_a_redis_broker(redis_url: str) -> None:
    app = TestApp(broker=redis_url, backend=redis_url)
    with setup_default_app(app):

        @app.task
        def add(x, y):
            return x + y

        with start_worker(app, pool="threads", concurrency=2) as worker:
            assert add.delay(2, 3).get(timeout=10) == 5
            assert app.control.inspect().ping() == {worker.hostname: {"ok": "pong"}}
        assert app.control.inspect().ping() is None


def test_start_worker_on_an_unreachable_broker_fails_at_once() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    app = TestApp(broker=url, broker_connection_timeout=2.0)
    before = set(threading.enumerate())
    with setup_default_app(app), pytest.raises(Exception) as raised,  \
            start_worker(app, ping_task_timeout=2.0):  # fmt: skip
        pytest.fail("the worker started")
    assert type(raised.value).__name__ == "OperationalError"
    assert f"the broker {url}" in str(raised.value) and "cannot be reached" in str(raised.value)
    assert [t for t in threading.enumerate() if t not in before] == []


def test_start_worker_refuses_what_it_cannot_run(test_app) -> None:
    with pytest.raises(TypeError, match="needs a spinach_compat app"), start_worker(None):
        pass
    with pytest.raises(UnsupportedFeature, match="pool='prefork'"), \
            start_worker(test_app, pool="prefork"):  # fmt: skip
        pass
    with pytest.raises(UnsupportedFeature, match="max_tasks_per_child"), \
            start_worker(test_app, max_tasks_per_child=1):  # fmt: skip
        pass
    with start_worker(test_app) as worker:
        assert worker.info()["pid"] == os.getpid()
        with pytest.raises(UnsupportedFeature, match="a worker of this app already runs"), \
                start_worker(test_app):  # fmt: skip
            pass


def test_the_app_trap_refuses_the_current_app(test_app) -> None:
    with set_trap(test_app), pytest.raises(RuntimeError, match="Test depends on current_app"):
        _ = spinach_compat.current_app.conf
    assert _state.get_current_app() is not None


def test_setup_default_app_puts_the_apps_back() -> None:
    before = _state.snapshot()
    app = TestApp()
    with setup_default_app(app):
        app.set_current()
        assert _state.get_current_app() is app
    after = _state.snapshot()
    assert after.current_app is before.current_app
    assert app not in after.apps


def test_manager_waits_for_a_queued_task_to_be_accepted(test_app) -> None:
    release = threading.Event()

    @test_app.task
    def blocked():
        return release.wait(10)

    manager = Manager(test_app)
    with start_worker(test_app):
        result = blocked.delay()
        manager.assert_received([result.id], interval_start=0.01)
        manager.assert_accepted([result.id], interval_start=0.01)
        assert manager.missing_results([result]) == [result.id]
        release.set()
        manager.join(result, timeout=10)
        assert manager.missing_results([result]) == []
        manager.wait_until_idle()


def test_a_logfile_gets_one_handler_however_many_workers_start(test_app, tmp_path) -> None:
    logfile = tmp_path / "worker.log"
    logger = logging.getLogger("celery")
    before = list(logger.handlers)
    try:
        for _ in range(2):
            with start_worker(test_app, logfile=str(logfile), loglevel="WARNING"):
                logging.getLogger("celery.task").warning("noted")
        added = [h for h in logger.handlers if h not in before]
        assert len(added) == 1
        added[0].flush()
        assert logfile.read_text().count("noted") == 2
    finally:
        for handler in [h for h in logger.handlers if h not in before]:
            logger.removeHandler(handler)
            handler.close()


def test_a_worker_that_cannot_answer_the_ping_is_stopped(test_app) -> None:
    """Consuming another queue, it never runs celery.ping: the check times out, the worker
    stops (no thread left behind: see the no_leaked_threads fixture)."""
    with pytest.raises(spinach_compat.exceptions.TimeoutError), \
            start_worker(test_app, queues=["elsewhere"], ping_task_timeout=0.2):  # fmt: skip
        pytest.fail("the worker started")
    assert not test_app.engine.running
