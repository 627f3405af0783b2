"""The Celery app, ``shared_task`` and the current app/task proxies."""

from __future__ import annotations

from typing import Any

from .. import _state
from .._state import Proxy, current_app, current_task
from .base import Celery

__all__ = ["Celery", "app_or_default", "current_app", "current_task", "default_app", "shared_task"]

#: The default app (``set_default``, else the one made when no app was current): Celery's.
default_app = Proxy(_state.get_default_app)


def app_or_default(app: Celery | None = None) -> Celery:
    """``app``, else the current app."""
    return _state.get_current_app() if app is None else app


def shared_task(*args: Any, **options: Any) -> Any:
    """A task for every app: registered with each app, used through the current one.

    ``@shared_task``, ``@shared_task(**options)``, or ``shared_task(fun, **options)``.
    """
    if len(args) == 1 and callable(args[0]):
        return _shared(args[0], options)
    if args:
        raise TypeError("shared_task() takes a function and keyword options only")
    return lambda fun: _shared(fun, options)


def _shared(fun: Any, options: dict[str, Any]) -> Any:
    """Register ``fun`` with every app; a proxy of its task in the current app."""
    if type(fun) is Proxy:
        raise TypeError(
            "@shared_task was applied more than once to the same function: "
            "remove the extra @shared_task decorator"
        )
    _state.connect_shared_task(lambda app: app.task(fun, **options))

    def task_of_current_app() -> Any:
        app = _state.get_current_app()
        name = options.get("name") or app.gen_task_name(fun.__name__, fun.__module__)
        if name not in app.tasks:
            app.task(fun, **options)
        return app.tasks[name]

    return Proxy(task_of_current_app)


from ..surface import module_getattr  # noqa: E402  (Celery names refused: see surface)

__getattr__ = module_getattr(__name__)
