"""Apps for tests: Celery's test configuration, and the current app put back after a test.

``TestApp`` is a facade app configured as Celery's test apps are (``DEFAULT_TEST_CONFIG``):
the ``memory://`` broker (the in-process ``MemoryBroker`` of that app) and the
``cache+memory://`` result backend (results kept in that same broker), JSON only, UTC. Those
settings rank as a configuration source's would: the app's constructor arguments win over
them, and so does a ``config_from_object`` read later, as with Celery's ``add_defaults``.
``setup_default_app`` restores the current and default apps when the test is over;
``use_trap`` makes any use of the current app raise meanwhile.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from copy import deepcopy
from typing import Any

from ... import _state
from ...app.base import Celery
from ...app.lifecycle import quiet_reads
from ...exceptions import UnsupportedFeature

#: The settings of a test app unless told otherwise (Celery's, key for key).
DEFAULT_TEST_CONFIG: dict[str, Any] = {
    "worker_hijack_root_logger": False,
    "worker_log_color": False,
    "accept_content": {"json"},
    "enable_utc": True,
    "timezone": "UTC",
    "broker_url": "memory://",
    "result_backend": "cache+memory://",
    "broker_heartbeat": 0,
}

#: The main name of a test app given none (Celery's).
DEFAULT_NAME = "celery.tests"


class Trap:
    """Stands for the current app while the trap is set: any use of it raises."""

    def __getattr__(self, name: str) -> Any:
        if name in ("_is_coroutine", "__func__"):  # what unittest.mock probes when patching
            return None
        raise RuntimeError(
            f"Test depends on current_app: it read current_app.{name} while the app trap is "
            "set (use_celery_app_trap); pass the app explicitly"
        )


def TestApp(
    name: str | None = None, config: Mapping[str, Any] | None = None,
    enable_logging: bool = False, set_as_current: bool = False, log: Any = None,
    backend: str | None = None, broker: str | None = None, **kwargs: Any,
) -> Celery:  # fmt: skip
    """A facade app for tests, with ``DEFAULT_TEST_CONFIG`` updated by ``config``.

    ``broker`` and ``backend`` replace the test configuration's; other keyword arguments
    go to ``Celery``. ``enable_logging`` is accepted (logging is left to pytest, see
    ``setup_app_for_worker``); a ``log`` class is refused, as ``Celery(log=...)`` is (the
    facade has no Logging object, so none of Celery's ``UnitLogging`` either).
    """
    from . import tasks  # noqa: F401  (celery.ping, for start_worker's ping check)

    if log is not None:
        raise UnsupportedFeature(
            f"TestApp(log={log!r}): the app's Logging class is not pluggable in "
            "spinach_compat; configure logging with a setup_logging receiver"
        )
    settings = dict(deepcopy(DEFAULT_TEST_CONFIG), **(config or {}))
    if broker is not None:
        settings.pop("broker_url", None)
    if backend is not None:
        settings.pop("result_backend", None)
    app = Celery(name or DEFAULT_NAME, set_as_current=set_as_current, broker=broker,
                 backend=backend, **kwargs)  # fmt: skip
    with quiet_reads():  # as add_defaults: reading them does not configure the app yet
        app.conf.load(settings)
    return app


@contextlib.contextmanager
def set_trap(app: Celery) -> Iterator[None]:
    """While inside, the current and default apps are a ``Trap``: code reaching for
    ``current_app`` instead of the app it was given raises."""
    trap: Any = Trap()
    previous = _state.snapshot()
    _state.set_current_app(trap)
    _state.set_default_app(trap)
    try:
        yield
    finally:
        _state.restore(previous)


@contextlib.contextmanager
def setup_default_app(app: Celery, use_trap: bool = False) -> Iterator[None]:
    """Run the block, then put back the current app, the default app and the registered
    apps as they were, and close ``app`` (unless it was the current app before)."""
    previous = _state.snapshot()
    try:
        if use_trap:
            with set_trap(app):
                yield
        else:
            yield
    finally:
        _state.restore(previous)
        if app is not previous.current_app:
            app.close()  # forgotten: later shared tasks are not added to it


from ...surface import module_getattr  # noqa: E402  (Celery names refused: see surface)

__getattr__ = module_getattr(__name__)
