"""Celery's public names the facade refuses, each with its reason and the way out.

Every public name of the Celery modules a project imports either exists in the facade with
Celery's behaviour or is listed in ``REFUSED``: using it raises ``UnsupportedFeature`` with
the reason, never an ``AttributeError`` a project would take for a typo, never a silent
no-op. Keys are Celery's dotted names: ``celery.module.name`` for a module's name,
``celery.module.Class.attr`` for an attribute of one of its classes.

A facade module refuses its listed names with ``__getattr__ = module_getattr(__name__)``;
a class refuses an attribute with ``refused_attribute("celery.module.Class.attr")``. The
checker (``spinach_compat.check``) reads the same table, so both always agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from .exceptions import UnsupportedFeature

#: Celery's dotted name -> why the facade refuses it and what to do instead.
REFUSED: dict[str, str] = {}

FACADE, CELERY = "spinach_compat", "celery"


def celery_name(facade_name: str) -> str:
    """``spinach_compat.x.y`` as Celery names it: ``celery.x.y``."""
    if facade_name == FACADE or facade_name.startswith(FACADE + "."):
        return CELERY + facade_name[len(FACADE) :]
    return facade_name


def refusal(name: str) -> str | None:
    """The reason ``name`` (Celery's dotted name) is refused, or None."""
    return REFUSED.get(name)


def refuse(name: str) -> NoReturn:
    """Raise ``UnsupportedFeature`` for the refused Celery name ``name``."""
    raise UnsupportedFeature(f"{name} is not supported by spinach_compat: {REFUSED[name]}")


def module_getattr(facade_module: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` refusing the module's listed names (others: AttributeError)."""
    prefix = celery_name(facade_module) + "."

    def __getattr__(name: str) -> Any:
        if prefix + name in REFUSED:
            refuse(prefix + name)
        raise AttributeError(f"module {facade_module!r} has no attribute {name!r}")

    return __getattr__


def refused_attribute(name: str) -> property:
    """A class attribute that raises ``UnsupportedFeature`` for ``name`` when read."""

    def read(_self: Any) -> NoReturn:
        refuse(name)

    return property(read, doc=f"Refused: {name} (see spinach_compat.surface.REFUSED).")
