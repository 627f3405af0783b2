"""``spinach_compat.install_as_celery()``: ``import celery`` gives the facade.

The shim changes ``sys.modules`` for good, so each scenario runs in a subprocess of its
own (``sys.executable``), with the helper packages of ``shim_pkgs/`` on its path: a
third-party task base (``libtasks``), a project migrated with the one line
(``shimproj``) and one that still says ``import celery`` with no shim (``celeryproj``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import spinach
import spinach_compat
from spinach_compat.bin import celery as command

ROOT = Path(__file__).resolve().parents[2]
PKGS = Path(__file__).resolve().parent / "shim_pkgs"
TIMEOUT = 60  #: seconds a subprocess may take before the test fails


def run(code: str, *paths: Path, args: tuple[str, ...] = (), **env: str):
    """Run ``code`` (or, with ``args``, a command) in a fresh interpreter; its outcome."""
    path = os.pathsep.join(str(p) for p in (*paths, PKGS, ROOT))
    argv = [sys.executable, *args] if args else [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=PKGS, timeout=TIMEOUT,
        env={**os.environ, "PYTHONPATH": path, **env},
    )  # fmt: skip


def ok(code: str, *paths: Path, **env: str) -> str:
    """The standard output of ``code``, which must succeed."""
    done = run(code, *paths, **env)
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- the modules -----------------------------------------------------------------------------


def test_celery_and_its_modules_are_the_facade_s():
    ok("""
        import spinach_compat
        spinach_compat.install_as_celery()
        import sys
        import celery
        import celery.exceptions, celery.result, celery.schedules, celery.signals
        from celery import Celery, Task, shared_task
        from celery.exceptions import Retry
        from celery.result import AsyncResult
        from celery.schedules import crontab
        from celery.signals import task_prerun
        import spinach_compat as facade
        from spinach_compat import exceptions, result, schedules, signals

        assert celery is facade and sys.modules["celery"] is facade
        assert (Celery, Task, shared_task) == (facade.Celery, facade.Task, facade.shared_task)
        assert celery.schedules is schedules and crontab is schedules.crontab
        assert Retry is exceptions.Retry and AsyncResult is result.AsyncResult
        assert task_prerun is signals.task_prerun
        assert sys.modules["celery.result"] is result
        assert celery.__version__ == "5.7.0"
        # the modules keep their own names: nothing was executed twice
        assert schedules.__spec__.name == "spinach_compat.schedules"
        assert sys.modules["spinach_compat.schedules"] is schedules
    """)


def test_a_second_call_does_nothing():
    ok("""
        import spinach_compat
        spinach_compat.install_as_celery()
        import sys
        from spinach_compat.shim import installed

        finders = list(sys.meta_path)
        spinach_compat.install_as_celery()
        assert sys.meta_path == finders and installed()
        import celery
        assert celery is spinach_compat
    """)


def test_a_celery_module_the_facade_lacks_is_refused_loudly():
    out = ok("""
        import spinach_compat
        spinach_compat.install_as_celery()
        from spinach_compat.exceptions import UnsupportedFeature

        for statement in ("import celery.events.snapshot", "from celery.events import snapshot",
                          "from celery.contrib.rdb import set_trace",
                          "import celery.concurrency"):
            try:
                exec(statement)
            except UnsupportedFeature as exc:
                print(exc)
            else:
                raise AssertionError(statement)
        try:
            import celery.no_such_module
        except ImportError as exc:  # not a Celery module: what real Celery raises
            assert type(exc) is ModuleNotFoundError and exc.name == "celery.no_such_module"
    """)
    lines = out.splitlines()
    assert len(lines) == 4
    assert "celery.events.snapshot is not supported" in lines[0] == lines[1]
    assert "celery.contrib.rdb is not supported" in lines[2]
    assert "pool implementations are not pluggable" in lines[3]  # the reason of surface.REFUSED
    assert all("install_as_celery()" in line for line in lines)


def test_installing_after_real_celery_names_who_imported_it():
    done = run("""
        import celeryproj  # says `import celery`, before the shim
        import spinach_compat
        from spinach_compat.shim import CeleryAlreadyImported

        try:
            spinach_compat.install_as_celery()
        except CeleryAlreadyImported as exc:
            assert isinstance(exc, RuntimeError)
            print(exc)
        else:
            raise AssertionError("no error")
    """)
    assert done.returncode == 0, done.stderr
    assert "it was imported by celeryproj." in done.stdout
    assert "Call install_as_celery() before them" in done.stdout


def test_installing_after_sentry_imported_celery_says_why():
    pytest.importorskip("sentry_sdk")
    done = run("""
        import sentry_sdk
        from sentry_recording import DSN, Recording
        import spinach_compat

        sentry_sdk.init(dsn=DSN, transport=Recording())  # enables its Celery integration
        spinach_compat.install_as_celery()
    """)
    assert done.returncode == 1
    importers = done.stderr.partition("it was imported by ")[2].partition(";")[0].split(", ")
    assert "sentry_sdk.integrations.celery" in importers  # with redbeat's modules, if installed
    assert "sentry_sdk.init() imports celery for its Celery integration" in done.stderr


# -- tasks on third-party bases ----------------------------------------------------------------


def test_a_library_task_base_runs_on_a_facade_worker():
    ok("""
        import shimproj  # installs the shim, then imports libtasks through it
        from shimproj import tasks
        from libtasks import LibTask
        import spinach_compat

        assert issubclass(LibTask, spinach_compat.Task)
        app = shimproj.app
        app.start_worker(concurrency=2, block=False)
        try:
            assert tasks.flavour.delay().get(timeout=15) == "from libtasks"
            failed = tasks.boom.delay()
            try:
                failed.get(timeout=15)
            except ValueError:
                pass
            assert LibTask.failed.wait(15), "the base's on_failure hook never ran"
            assert LibTask.failures == [(failed.id, "ValueError('boom')")]
        finally:
            app.stop_worker()
    """)


def test_without_the_shim_a_real_celery_base_is_refused():
    out = ok("""
        import celery
        import spinach_compat
        from spinach_compat.exceptions import UnsupportedFeature

        class Base(celery.Task):
            pass

        app = spinach_compat.Celery("noshim", broker="memory://", backend="memory://")
        try:
            @app.task(base=Base)
            def add(x, y):
                return x + y
        except UnsupportedFeature as exc:
            print(exc)
        assert "__main__.add" not in app.tasks
        try:
            @spinach_compat.shared_task(base=Base)
            def mul(x, y):
                return x * y
        except UnsupportedFeature as exc:
            print(exc)
    """)
    first, second = out.splitlines()
    assert "task 'noshim.add': base=__main__.Base subclasses real Celery's celery.Task" in first
    assert "call spinach_compat.install_as_celery() before __main__ is imported" in first
    assert "task 'noshim.mul': base=__main__.Base subclasses real Celery's" in second


# -- third-party packages ------------------------------------------------------------------------


def test_django_structlog_receivers_see_the_task_and_the_caller_s_context():
    pytest.importorskip("django_structlog")
    ok("""
        import spinach_compat
        spinach_compat.install_as_celery()
        import django_min  # settings.configure(), django.setup()
        import structlog
        from structlog.testing import LogCapture
        from django_structlog.celery.receivers import CeleryReceiver
        from celery import Celery

        app = Celery("structlogged", broker="memory://", backend="memory://")

        @app.task
        def add(x, y):
            structlog.get_logger("proj").info("adding")
            return x + y

        receiver = CeleryReceiver()  # kept: signals hold their receivers weakly, as Celery's
        receiver.connect_worker_signals()
        capture = LogCapture()  # after the context the receivers bind, as in a project
        structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
        app.start_worker(concurrency=1, block=False)
        try:
            structlog.contextvars.bind_contextvars(request_id="req-1")  # the caller's context
            result = add.delay(2, 3)
            assert result.get(timeout=15) == 5
        finally:
            app.stop_worker()
        logs = capture.entries
        events = {log["event"]: log for log in logs}
        assert events["task_enqueued"]["child_task_id"] == result.id, logs
        assert events["task_started"]["task"] == add.name
        assert events["adding"]["task_id"] == result.id  # bound by its task_prerun receiver
        assert events["adding"]["request_id"] == "req-1"  # carried in the message's headers
        assert "task_succeeded" in events
    """)


def test_django_structlog_worker_step_is_refused_loudly():
    pytest.importorskip("django_structlog")
    out = ok("""
        import spinach_compat
        spinach_compat.install_as_celery()
        import django_min  # settings.configure(), django.setup()
        from spinach_compat.exceptions import UnsupportedFeature

        from celery import Celery
        from django_structlog.celery.steps import DjangoStructLogInitStep  # imports fine

        app = Celery("structlog_steps", broker="memory://")
        try:
            app.steps["worker"].add(DjangoStructLogInitStep)  # what its docs say to do
        except UnsupportedFeature as exc:
            print(exc)
    """)
    assert "steps" in out and "not supported" in out


def test_sentry_s_auto_enabled_celery_integration_warns_and_logging_reports_failures():
    pytest.importorskip("sentry_sdk")
    done = run("""
        import spinach_compat
        spinach_compat.install_as_celery()
        import sentry_sdk
        from sentry_recording import DSN, Recording
        import logging
        from celery import Celery
        from sentry_sdk.integrations.logging import LoggingIntegration

        sentry_sdk.init(  # event_level: sentry-sdk 2's default, not 3's
            dsn=DSN, transport=Recording(),
            integrations=[LoggingIntegration(event_level=logging.ERROR)],
        )
        assert sentry_sdk.get_client().get_integration("celery") is None

        app = Celery("sentried", broker="memory://", backend="memory://")

        @app.task
        def boom():
            raise ValueError("boom")

        app.start_worker(concurrency=1, block=False)
        try:
            boom.delay()
            assert Recording.seen.wait(15), "no Sentry event for the failed task"
        finally:
            app.stop_worker()
        exceptions = [value["type"] for value in Recording.events[0]["exception"]["values"]]
        assert "ValueError" in exceptions, exceptions
    """)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("CeleryIntegration is not supported by spinach_compat") == 1
    assert "spinach.contrib.sentry.SpinachIntegration()" in done.stderr


def test_sentry_s_explicit_celery_integration_fails_loudly():
    pytest.importorskip("sentry_sdk")
    out = ok("""
        import spinach_compat
        spinach_compat.install_as_celery()
        import sentry_sdk
        from sentry_recording import DSN, Recording
        from sentry_sdk.integrations.celery import CeleryIntegration
        from spinach_compat.exceptions import UnsupportedFeature

        try:
            sentry_sdk.init(
                dsn=DSN, transport=Recording(),
                integrations=[CeleryIntegration(monitor_beat_tasks=True)],
            )
        except UnsupportedFeature as exc:
            print(exc)
    """)
    assert out.startswith("sentry-sdk's CeleryIntegration is not supported by spinach_compat")


def test_sentry_s_celery_integration_disabled_stays_quiet():
    pytest.importorskip("sentry_sdk")
    done = run("""
        import spinach_compat
        spinach_compat.install_as_celery()
        import sentry_sdk
        from sentry_recording import DSN, Recording
        from sentry_sdk.integrations.celery import CeleryIntegration

        sentry_sdk.init(
            dsn=DSN, transport=Recording(),
            disabled_integrations=[CeleryIntegration],
        )
    """)
    assert done.returncode == 0, done.stderr
    assert "CeleryIntegration" not in done.stderr


def test_opentelemetry_celery_instrumentor_fails_loudly():
    """opentelemetry is not installed: a stand-in namespace lets its name be imported."""
    out = ok("""
        import spinach_compat
        spinach_compat.install_as_celery()
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from spinach_compat.exceptions import UnsupportedFeature

        try:
            CeleryInstrumentor().instrument()
        except UnsupportedFeature as exc:
            print(exc)
    """, PKGS / "fake_otel")  # fmt: skip
    assert out.startswith("opentelemetry-instrumentation-celery is not supported")


# -- the command line ------------------------------------------------------------------------------


def spinach_compat_command(*args: str, **env: str):
    return run("", args=("-m", "spinach_compat", *args), **env)


def test_spinach_as_celery_runs_a_project_saying_import_celery():
    done = spinach_compat_command("-A", "celeryproj", "purge", "-f", SPINACH_AS_CELERY="1")
    assert done.returncode == command.EXIT_OK, done.stderr
    assert done.stdout == "No messages purged from 1 queue.\n"
    without = spinach_compat_command("-A", "celeryproj", "purge", "-f", SPINACH_AS_CELERY="0")
    assert without.returncode == command.EXIT_USAGE
    assert "it is not a Celery app" in without.stderr  # real Celery's app, not the facade's


def test_spinach_as_celery_takes_only_a_boolean():
    done = spinach_compat_command("-A", "celeryproj", "purge", "-f", SPINACH_AS_CELERY="celery")
    assert done.returncode == command.EXIT_USAGE
    assert done.stderr == "Error: SPINACH_AS_CELERY='celery': set it to 1 (or 0)\n"


def test_celery_bin_celery_celery_runs_the_command():
    out = ok("""
        import spinach_compat
        spinach_compat.install_as_celery()
        from celery.bin.celery import celery
        from spinach_compat.exceptions import UnsupportedFeature

        assert celery.main(["-A", "celeryproj", "purge", "-f"], standalone_mode=False) == 0
        try:
            celery(["-A", "celeryproj", "purge", "-f"])
        except SystemExit as exc:
            assert exc.code == 0
        try:
            celery.add_command(object())
        except UnsupportedFeature as exc:
            print(exc)
    """)
    assert out.count("No messages purged from 1 queue.") == 2
    assert "celery.bin.celery.celery.add_command() is not supported" in out


def test_version_names_the_package_and_the_celery_api(capsys):
    with pytest.raises(SystemExit) as exit_:
        command.main(["--version"])
    assert exit_.value.code == 0
    version = f"spinach-queue {spinach.__version__} (Celery {spinach_compat.__version__} API)\n"
    assert capsys.readouterr().out == version
