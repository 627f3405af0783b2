"""The Celery app, ``shared_task`` and the current app/task proxies."""

from __future__ import annotations

from typing import Any

from .. import _state
from .._state import Proxy, current_app, current_task
from .base import Celery

__all__ = ["Celery", "current_app", "current_task", "shared_task"]


def shared_task(*args: Any, **kwargs: Any) -> Any:
    """A task for every app: registered with each app, used through the current one."""

    def create(fun: Any) -> Any:
        name = kwargs.get("name") or f"{fun.__module__}.{fun.__name__}"
        _state.connect_shared_task(lambda app: app._task_from_fun(fun, **kwargs))
        return Proxy(lambda: _task_of_current_app(name, fun))

    def _task_of_current_app(name: str, fun: Any) -> Any:
        app = _state.get_current_app()
        if name not in app.tasks:
            app._task_from_fun(fun, **kwargs)
        return app.tasks[name]

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return create(args[0])
    return create
