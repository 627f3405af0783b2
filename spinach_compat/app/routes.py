"""Task routing by the ``task_routes`` setting, with Celery's rules.

``task_routes`` is a router or a list/tuple of routers, tried in order until one gives a
route. A router is:

- a mapping (or a list/tuple of ``(key, route)`` pairs): a task name is first looked up
  exactly, then matched against the keys holding a ``*`` (globs) and the ``re.compile``
  keys (matched from the start of the name), in their order;
- a callable ``router(name, args, kwargs, options, task=None, **kw)``;
- an object with a ``route_for_task(name, args, kwargs)`` method (Celery 3 routers);
- a 'module.attr' or 'module:attr' string naming one of these (a class with
  ``route_for_task`` is instantiated).

A route is a dict of options (``{'queue': 'name', ...}``) or a queue name.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .defaults import Settings
    from .task import Task

__all__ = ["MapRoute", "prepare", "queue_of", "route_for"]

Router = Callable[..., Any]


class MapRoute:
    """The router of a mapping: exact names first, then globs and regexes in order."""

    def __init__(self, routes: Mapping | Iterable[tuple[Any, Any]]):
        items = routes.items() if isinstance(routes, Mapping) else routes
        self.exact: dict[str, Any] = {}
        self.patterns: list[tuple[re.Pattern, Any]] = []
        for key, route in items:
            if isinstance(key, re.Pattern):
                self.patterns.append((key, route))
            elif "*" in key:
                self.patterns.append((_glob(key), route))
            else:
                self.exact[key] = route

    def routes(self) -> list[Any]:
        """Every route of the mapping, exact names first."""
        return [*self.exact.values(), *(route for _, route in self.patterns)]

    def __call__(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name in self.exact:
            return self.exact[name]
        for pattern, route in self.patterns:
            if pattern.match(name):
                return route
        return None


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern:
    """The regex of a glob: the mappings are read again at each message."""
    return re.compile(fnmatch.translate(pattern))


def prepare(routes: Any) -> list[Router]:
    """The routers of a ``task_routes`` value, in the order they are tried."""
    if routes is None:
        return []
    if not isinstance(routes, (list, tuple)):
        routes = (routes,)
    return [_router(route) for route in routes]


def route_for(
    routers: Iterable[Router], name: str, args: Any = (), kwargs: Any = None,
    options: dict | None = None, task: Task | None = None, static: bool = False,
) -> dict | None:  # fmt: skip
    """The route (a dict) of the first router that has one for ``name``, else None.

    ``static`` asks the mapping routers only, not the functions (which may need the
    arguments of a message): what is known of a task before any is sent.
    """
    for router in routers:
        if static and not isinstance(router, MapRoute):
            continue
        route = _ask(router, name, args or (), kwargs or {}, options or {}, task)
        if route is not None:
            return {"queue": route} if isinstance(route, str) else dict(route)
    return None


def queue_name(queue: Any) -> Any:
    """A queue as Celery takes it: a name, or a kombu ``Queue`` (its name)."""
    return getattr(queue, "name", queue)


def queue_of(conf: Settings, task: Task | None, route: dict) -> str:
    """The queue of a message: its task's own, else ``route``'s, else ``task_default_queue``."""
    if task is not None and task.queue:
        return task.queue
    queue = route.get("queue")
    return queue_name(queue) or conf.task_default_queue


def _ask(
    router: Router, name: str, args: Any, kwargs: dict, options: dict, task: Task | None
) -> Any:
    if isinstance(router, str):
        router = _resolve(router)
    if hasattr(router, "route_for_task"):
        return router.route_for_task(name, args, kwargs)
    if not callable(router):
        raise TypeError(f"task_routes: {router!r} is neither a mapping, a router nor its name")
    return router(name, args, kwargs, options, task=task)


def _router(route: Any) -> Router:
    """A mapping made a ``MapRoute``; others as they are (a name is imported at first use,
    as Celery does)."""
    return MapRoute(route) if isinstance(route, (Mapping, list, tuple)) else route


@functools.cache
def _resolve(path: str) -> Router:
    """The router a 'module.attr' or 'module:attr' string names."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    router = getattr(importlib.import_module(module_name), attr)
    if isinstance(router, type) and hasattr(router, "route_for_task"):
        router = router()  # a Celery 3 router class
    return router
