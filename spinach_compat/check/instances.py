"""Real facade objects, to see the attributes their constructors set.

An attribute such as ``app.on_after_finalize`` may be set on each app when it is built
(by a helper, not in the class body), so the class alone does not show it. The checker
builds one app (in-memory broker, never current, never started), one task of it, a
signature, a result and the control objects, and looks in their ``__dict__`` only: reading
an instance's dictionary runs no property and no code of the facade.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

PROBE = "spinach-compat-check"  #: the probe app's main name and its task's name


@functools.cache
def _app() -> Any:
    from .. import Celery

    return Celery(PROBE, broker="memory://", backend="memory://", set_as_current=False)


def _task() -> Any:
    return _app().task(name=f"{PROBE}.probe")(_probe)


def _probe() -> None:
    """The probe task's body: never run."""


#: Celery's dotted class name -> how to build one facade instance of it.
FACTORIES: dict[str, Callable[[], Any]] = {
    "celery.app.base.Celery": _app,
    "celery.app.task.Task": _task,
    "celery.canvas.Signature": lambda: _task().s(),
    "celery.result.AsyncResult": lambda: _app().AsyncResult(PROBE),
    "celery.app.control.Control": lambda: _app().control,
    "celery.app.control.Inspect": lambda: _app().control.inspect(),
}


@functools.cache
def instance_dict(celery_class: str) -> frozenset[str]:
    """The names in the ``__dict__`` of a facade instance of ``celery_class`` (or none)."""
    factory = FACTORIES.get(celery_class)
    try:
        return frozenset(vars(factory())) if factory else frozenset()
    except Exception:
        return frozenset()
