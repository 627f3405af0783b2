"""A Django project on spinach_compat: CELERY_* settings, lazy autodiscovery, shared tasks."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from spinach_compat import _state, signals
from spinach_compat.worker import Worker

from .conftest import WAIT

django = pytest.importorskip("django")

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "tests.compat.django_proj"
SETTINGS = f"{PROJECT}.djproj.settings"
TASKS = f"{PROJECT}.shop.tasks"
APP_MODULE = f"{PROJECT}.djproj.celery"


@pytest.fixture(scope="module")
def django_settings() -> Iterator[None]:
    """Django set up once with the project's settings (as ``manage.py`` would); the
    environment variable is gone afterwards, so later tests' subprocesses do not inherit it."""
    from django.conf import settings

    added = "DJANGO_SETTINGS_MODULE" not in os.environ
    if not settings.configured:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
        django.setup()
    assert settings.SETTINGS_MODULE == SETTINGS
    yield
    if added:
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)


@pytest.fixture
def django_app(django_settings, monkeypatch) -> Iterator:
    """A fresh import of the project's ``celery.py``: its tasks not imported yet."""
    monkeypatch.setattr(_state, "_shared_factories", [])
    for name in (TASKS, APP_MODULE):
        monkeypatch.delitem(sys.modules, name, raising=False)
    previous = _state._current_app
    app = importlib.import_module(APP_MODULE).app
    yield app
    app.stop_worker()
    _state._current_app = previous


@pytest.fixture
def worker(django_app) -> Iterator[Worker]:
    """The worker command's ``Worker`` in a thread, ready to consume; stopped after."""
    ready = threading.Event()

    def on_ready(sender=None, **kwargs) -> None:
        ready.set()

    signals.worker_ready.connect(on_ready, weak=False)
    worker = Worker(django_app, concurrency=2, quiet=True)
    thread = threading.Thread(target=worker.start, name="django-worker")
    thread.start()
    try:
        assert ready.wait(WAIT), "the worker did not become ready"
        yield worker
    finally:
        worker.stop()
        thread.join(WAIT)
        signals.worker_ready.disconnect(on_ready)


def test_celery_settings_are_read(django_app) -> None:
    conf = django_app.conf
    assert (conf.broker_url, conf.result_backend) == ("memory://", "memory://")
    assert conf.task_always_eager is False
    assert conf.task_default_queue == "shop"
    assert conf.timezone == "Europe/Paris"
    assert conf.worker_hijack_root_logger is False
    assert "debug" not in conf and "secret_key" not in conf
    assert django_app.namespace == "djproj"


def test_autodiscover_is_lazy(django_app) -> None:
    assert TASKS not in sys.modules
    assert f"{TASKS}.total" not in django_app.tasks
    django_app.loader.import_default_modules()  # what a worker does when it starts
    assert TASKS in sys.modules
    assert {f"{TASKS}.total", f"{TASKS}.where"} <= set(django_app.tasks)


def test_shared_task_runs_in_worker_threads(django_app, worker) -> None:
    tasks = sys.modules[TASKS]
    sent = tasks.total.delay([1, 2, 3])
    placed = tasks.where.delay()
    assert django_app.AsyncResult(sent.id).get(timeout=WAIT) == 6
    assert placed.get(timeout=WAIT) == {"eager": False, "queue": "shop"}
    assert django_app.AsyncResult(sent.id).state == "SUCCESS"


def test_eager_settings_variant() -> None:
    """With ``CELERY_TASK_ALWAYS_EAGER`` the tasks run in the caller (own process: one
    Django settings module per process)."""
    code = (
        "import django; django.setup()\n"
        f"from {APP_MODULE} import app\n"
        "assert app.conf.task_always_eager and app.conf.task_eager_propagates\n"
        "app.loader.import_default_modules()\n"
        f"from {TASKS} import total, where\n"
        "assert total.delay([2, 3]).get() == 5\n"
        "assert where.delay().get()['eager'] is True\n"
        "print('eager ok')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": f"{PROJECT}.djproj.settings_eager"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "eager ok" in done.stdout
