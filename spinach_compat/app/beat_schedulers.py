"""Finding the beat scheduler class of ``-S``/``--scheduler`` or ``beat_scheduler``.

A class, or its dotted path (``module:Class`` or ``module.Class``), or an alias registered
in the ``celery.beat_schedulers`` entry points (``django`` is django-celery-beat's
``DatabaseScheduler``), as Celery looks them up. ``celery.beat:...`` names Celery's own
classes, which are the facade's (``spinach_compat.beat``) with or without the import shim.

The class must derive from the facade's ``spinach_compat.beat.Scheduler``: a third-party
scheduler module written for Celery (``from celery.beat import Scheduler``) gets it through
the ``celery`` import shim (``SPINACH_AS_CELERY=1``). Anything else is a
``BeatSchedulerError`` naming the value and the cause: a configuration error the beat
command reports with exit status 1, without retrying.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from ..exceptions import ImproperlyConfigured

#: Entry-point group of scheduler aliases, as Celery's.
ALIASES_GROUP = "celery.beat_schedulers"


class BeatSchedulerError(ImproperlyConfigured):
    """The beat scheduler cannot be loaded: a configuration error, permanent."""


def load_scheduler_class(spec: Any) -> type:
    """The scheduler class of ``spec`` (a class, a dotted path or an alias)."""
    from ..beat import Scheduler

    cls = spec if isinstance(spec, type) else _import_class(str(spec))
    if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
        raise BeatSchedulerError(_not_ours(spec, cls))
    return cls


def _import_class(spec: str) -> Any:
    """The object ``spec`` names: an alias, ``module:attr`` or ``module.attr``."""
    path = _aliases().get(spec, spec)
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise BeatSchedulerError(
            f"beat scheduler {spec!r} is not a dotted path to a class (as "
            "'django_celery_beat.schedulers:DatabaseScheduler') nor a known alias "
            f"({', '.join(sorted(_aliases())) or 'none installed'})"
        )
    if module_name == "celery" or module_name.startswith("celery."):
        module_name = "spinach_compat" + module_name[len("celery") :]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise BeatSchedulerError(
            f"beat scheduler {spec!r} cannot be loaded: importing {module_name!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise BeatSchedulerError(
            f"beat scheduler {spec!r} cannot be loaded: module {module_name!r} has no "
            f"attribute {attr!r}"
        ) from None


def _aliases() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ALIASES_GROUP)}


def _not_ours(spec: Any, found: Any) -> str:
    """Why ``found`` cannot be the scheduler: not a class, or built on real Celery."""
    module = getattr(found, "__module__", "")
    bases = [getattr(b, "__module__", "") for b in getattr(found, "__mro__", ())]
    if any(m == "celery.beat" for m in bases):
        return (
            f"beat scheduler {spec!r} ({module}) is built on real Celery's "
            "celery.beat.Scheduler: run the command with SPINACH_AS_CELERY=1, so that "
            "'import celery' gives spinach_compat (see "
            "migration_guide/features.md#the-celery-import-shim)"
        )
    return (
        f"beat scheduler {spec!r} is {found!r}, not a subclass of celery.beat.Scheduler "
        "(spinach_compat.beat.Scheduler)"
    )
