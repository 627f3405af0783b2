"""Process-wide state: the current app and the stack of running tasks (per thread)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, NamedTuple

from spinach.forks import at_fork_in_child

if TYPE_CHECKING:
    from .app.base import Celery
    from .app.task import Task

_lock = threading.RLock()
_current_app: Celery | None = None
_default_app: Celery | None = None
_apps: list[Any] = []  # weak references would do; apps live as long as the process
_tls = threading.local()


@at_fork_in_child
def _unlock_after_fork() -> None:
    """A forked child's own lock: a parent's thread may have held it at the fork."""
    global _lock
    _lock = threading.RLock()


class Snapshot(NamedTuple):
    """The current app, the default app and the registered apps at one time."""

    current_app: Any
    default_app: Any
    apps: list[Any]


def snapshot() -> Snapshot:
    """The apps now, to ``restore`` later (the testing helpers put them back after a test)."""
    with _lock:
        return Snapshot(_current_app, _default_app, list(_apps))


def restore(state: Snapshot) -> None:
    """Put back the current, default and registered apps of a ``snapshot``."""
    global _current_app, _default_app
    with _lock:
        _current_app, _default_app = state.current_app, state.default_app
        _apps[:] = state.apps


def set_current_app(app: Celery) -> None:
    global _current_app
    _current_app = app


def set_default_app(app: Celery) -> None:
    """Make ``app`` the one ``get_current_app`` gives while no app was made current."""
    global _default_app
    with _lock:
        _default_app = app


def get_default_app() -> Celery | None:
    """The default app (Celery's ``celery.app.default_app``): None until one is needed."""
    return _default_app


def get_current_app() -> Celery:
    """The app made current last, or a default app created on first use."""
    global _default_app
    with _lock:
        if _current_app is not None:
            return _current_app
        if _default_app is None:
            from .app.base import Celery

            _default_app = Celery("default", set_as_current=False)
        return _default_app


def app_of(task: Task) -> Celery:
    """The app of ``task``: the one it is bound to, else the current app (as Celery's
    ``Task._get_app``)."""
    return task.app if task.app is not None else get_current_app()


def register_app(app: Celery) -> None:
    with _lock:
        _apps.append(app)


def deregister_app(app: Celery) -> None:
    """Forget ``app``: shared tasks declared from now on are not added to it."""
    with _lock:
        if app in _apps:
            _apps.remove(app)


def all_apps() -> list[Celery]:
    with _lock:
        return list(_apps)


def _stack() -> list[Task]:
    stack = getattr(_tls, "tasks", None)
    if stack is None:
        stack = _tls.tasks = []
    return stack


def push_task(task: Task) -> None:
    _stack().append(task)


def pop_task() -> None:
    _stack().pop()


def get_current_task() -> Task | None:
    """The task running in this thread, if any."""
    stack = _stack()
    return stack[-1] if stack else None


def get_current_worker_task() -> Task | None:
    """The innermost task of this thread run by a worker or ``apply`` (eagerly), not called
    directly as a function (Celery's rule: its request is not ``called_directly``)."""
    for task in reversed(_stack()):
        if not task.request.called_directly:
            return task
    return None


class Proxy:
    """An object standing for what ``factory()`` returns at each use."""

    __slots__ = ("__factory",)

    def __init__(self, factory: Any):
        object.__setattr__(self, "_Proxy__factory", factory)

    def _get_current_object(self) -> Any:
        return self.__factory()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get_current_object(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._get_current_object(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._get_current_object(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._get_current_object()(*args, **kwargs)

    def __bool__(self) -> bool:
        return bool(self._get_current_object())

    def __eq__(self, other: object) -> bool:
        return self._get_current_object() == other

    def __hash__(self) -> int:
        return hash(self._get_current_object())

    def __repr__(self) -> str:
        try:
            return repr(self._get_current_object())
        except Exception:
            return f"<Proxy unbound {self.__factory!r}>"


current_app: Celery = Proxy(get_current_app)  # type: ignore[assignment]
current_task: Task | None = Proxy(get_current_task)  # type: ignore[assignment]


_shared_factories: list[Any] = []


def connect_shared_task(factory: Any) -> None:
    """Call ``factory(app)`` for every app, existing or created later."""
    with _lock:
        _shared_factories.append(factory)
        apps = list(_apps)
    for app in apps:
        factory(app)


def shared_task_factories() -> list[Any]:
    with _lock:
        return list(_shared_factories)


_finalize_factories: list[Any] = []


def connect_on_app_finalize(factory: Any) -> None:
    """Call ``factory(app)`` when an app finalizes from now on (Celery's rule for
    ``@app.task(shared=True)``: the task is also made in the apps finalized later)."""
    with _lock:
        _finalize_factories.append(factory)


def finalize_factories() -> list[Any]:
    with _lock:
        return list(_finalize_factories)
