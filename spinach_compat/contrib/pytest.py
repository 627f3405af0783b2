"""Celery's pytest fixtures on the facade (``celery.contrib.pytest``).

Enabled as Celery's are, never by installing the package alone: ``-p
spinach_compat.contrib.pytest`` on the command line, ``pytest_plugins =
("spinach_compat.contrib.pytest",)`` in the root ``conftest.py``,
``PYTEST_PLUGINS=spinach_compat.contrib.pytest``, or the ``spinach_compat_fixtures = true``
ini option read by the package's entry point (``pytest_spinach_compat``).

The fixtures have Celery's names, scopes and defaults: ``celery_app`` (a ``TestApp`` per
test, configured by ``celery_config``, ``celery_parameters`` and the ``celery`` marker),
``celery_worker`` (a real worker of it in this process, see
``spinach_compat.contrib.testing.worker``), their session-wide twins
``celery_session_app`` and ``celery_session_worker``, and the fixtures a project overrides
to tune them. ``NO_WORKER`` set in the environment makes the worker fixtures start nothing
(and give None), as in Celery.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from ..app.base import Celery
from .testing.worker import TestWorkController

#: Set in the environment: the worker fixtures start no worker (Celery's variable).
NO_WORKER = os.environ.get("NO_WORKER")

#: The marker's line in ``pytest --markers``.
MARKER = "celery(**overrides): override celery configuration for a test case"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``celery`` marker (no unknown-marker warning)."""
    config.addinivalue_line("markers", MARKER)


@contextmanager
def _test_app(request: pytest.FixtureRequest, config: Mapping[str, Any],
              parameters: Mapping[str, Any], enable_logging: bool,
              use_trap: bool) -> Iterator[Celery]:  # fmt: skip
    """A ``TestApp`` of ``config`` updated by the closest ``celery`` marker's keywords,
    the current and default apps put back after."""
    from .testing.app import TestApp, setup_default_app

    mark = request.node.get_closest_marker("celery")
    settings = {**config, **(mark.kwargs if mark else {})}
    app = TestApp(set_as_current=False, enable_logging=enable_logging, config=settings,
                  **(parameters or {}))  # fmt: skip
    with setup_default_app(app, use_trap=use_trap):
        yield app


@contextmanager
def _worker_of(app: Celery, includes: Sequence[str], class_tasks: Sequence[Any], pool: Any,
               parameters: Mapping[str, Any]) -> Iterator[TestWorkController | None]:  # fmt: skip
    """A test worker of ``app`` after importing ``includes`` and registering
    ``class_tasks``; None when ``NO_WORKER`` is set."""
    from .testing.worker import start_worker

    if NO_WORKER:
        yield None
        return
    if not isinstance(app, Celery):
        raise TypeError(
            f"the celery worker fixtures need an app, got {app!r}: the celery_app (or "
            "celery_session_app) fixture must give a spinach_compat Celery app"
        )
    for module in includes:
        app.loader.import_task_module(module)
    for task in class_tasks:
        app.register_task(task)
    with start_worker(app, pool=pool, **parameters) as worker:
        yield worker


@pytest.fixture(scope="session")
def use_celery_app_trap() -> bool:
    """Override to return True: using the current app (not the one given) then raises."""
    return False


@pytest.fixture(scope="session")
def celery_enable_logging() -> bool:
    """Override to return True to let the test app set logging up."""
    return False


@pytest.fixture(scope="session")
def celery_includes() -> Sequence[str]:
    """Override with the modules a worker fixture imports before starting (tasks,
    signal receivers)."""
    return ()


@pytest.fixture(scope="session")
def celery_class_tasks() -> Sequence[Any]:
    """Override with task classes the session worker registers with its app."""
    return []


@pytest.fixture(scope="session")
def celery_worker_pool() -> Any:
    """Override to pick the workers' pool: 'solo' (one thread, the default) or 'threads'."""
    return "solo"


@pytest.fixture(scope="session")
def celery_config() -> Mapping[str, Any]:
    """Override with the settings of the test apps (over ``DEFAULT_TEST_CONFIG``)."""
    return {}


@pytest.fixture(scope="session")
def celery_parameters() -> Mapping[str, Any]:
    """Override with keyword arguments for the test apps' ``Celery(...)``."""
    return {}


@pytest.fixture(scope="session")
def celery_worker_parameters() -> Mapping[str, Any]:
    """Override with keyword arguments of ``start_worker`` (e.g. ``queues``,
    ``perform_ping_check``, ``shutdown_timeout``)."""
    return {}


@pytest.fixture(scope="session")
def celery_session_app(request: pytest.FixtureRequest, celery_config: Mapping[str, Any],
                       celery_parameters: Mapping[str, Any], celery_enable_logging: bool,
                       use_celery_app_trap: bool) -> Iterator[Celery]:  # fmt: skip
    """One test app for the session; current and default unless the trap is on."""
    with _test_app(request, celery_config, celery_parameters, celery_enable_logging,
                   use_celery_app_trap) as app:  # fmt: skip
        if not use_celery_app_trap:
            app.set_default()
            app.set_current()
        yield app


@pytest.fixture(scope="session")
def celery_session_worker(
    celery_session_app: Celery, celery_includes: Sequence[str],
    celery_class_tasks: Sequence[Any], celery_worker_pool: Any,
    celery_worker_parameters: Mapping[str, Any],
) -> Iterator[TestWorkController | None]:  # fmt: skip
    """A worker of ``celery_session_app`` running for the whole session."""
    with _worker_of(celery_session_app, celery_includes, celery_class_tasks,
                    celery_worker_pool, celery_worker_parameters) as worker:  # fmt: skip
        yield worker


@pytest.fixture()
def celery_app(request: pytest.FixtureRequest, celery_config: Mapping[str, Any],
               celery_parameters: Mapping[str, Any], celery_enable_logging: bool,
               use_celery_app_trap: bool) -> Iterator[Celery]:  # fmt: skip
    """A test app for this test (not made current: see ``depends_on_current_app``)."""
    with _test_app(request, celery_config, celery_parameters, celery_enable_logging,
                   use_celery_app_trap) as app:  # fmt: skip
        yield app


@pytest.fixture()
def celery_worker(celery_app: Celery, celery_includes: Sequence[str], celery_worker_pool: Any,
                  celery_worker_parameters: Mapping[str, Any],
                  ) -> Iterator[TestWorkController | None]:  # fmt: skip
    """A worker of ``celery_app`` for this test, stopped when it ends."""
    with _worker_of(celery_app, celery_includes, (), celery_worker_pool,
                    celery_worker_parameters) as worker:  # fmt: skip
        yield worker


@pytest.fixture()
def depends_on_current_app(celery_app: Celery) -> None:
    """Make ``celery_app`` the current app for this test."""
    celery_app.set_current()
