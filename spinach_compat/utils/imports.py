"""Importing modules and symbols by name, as ``celery.utils.imports``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import import_module, reload
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kombu.utils.imports import symbol_by_name

if TYPE_CHECKING:
    from ..app.base import Celery

__all__ = [
    "NotAPackage",
    "cwd_in_path",
    "find_module",
    "gen_task_name",
    "import_from_cwd",
    "instantiate",
    "module_file",
    "qualname",
    "reload_from_cwd",
    "symbol_by_name",
]


class NotAPackage(Exception):
    """A dotted module name goes through a module that is not a package."""


def qualname(obj: Any) -> str:
    """``module.QualName`` of a class or function (of its class for other objects)."""
    if not hasattr(obj, "__name__") and hasattr(obj, "__class__"):
        obj = obj.__class__
    name = obj.__qualname__
    return name if "." in name else f"{obj.__module__}.{name}"


def instantiate(name: Any, *args: Any, **kwargs: Any) -> Any:
    """An instance of the class named ``name`` (``'module:Class'`` or ``'module.Class'``)."""
    return symbol_by_name(name)(*args, **kwargs)


@contextmanager
def cwd_in_path() -> Iterator[str | None]:
    """Put the working directory first on ``sys.path`` for the block (if not there yet)."""
    try:
        cwd = os.getcwd()
    except FileNotFoundError:
        cwd = None
    if not cwd or cwd in sys.path:
        yield None
        return
    sys.path.insert(0, cwd)
    try:
        yield cwd
    finally:
        if cwd in sys.path:
            sys.path.remove(cwd)


def find_module(module: str, path: Any = None, imp: Callable | None = None) -> ModuleType:
    """Import ``module`` with the working directory on the path; ``NotAPackage`` if a parent
    of a dotted name is a plain module."""
    imp = imp or import_module
    with cwd_in_path():
        try:
            return imp(module)
        except ImportError:
            parts = module.split(".")
            for end in range(1, len(parts)):
                package = ".".join(parts[:end])
                try:
                    parent = imp(package)
                except ImportError:
                    break
                if not hasattr(parent, "__path__"):
                    raise NotAPackage(package) from None
            raise


def import_from_cwd(module: str, imp: Callable | None = None, package: str | None = None) -> Any:
    """Import ``module``, modules of the working directory first."""
    with cwd_in_path():
        return (imp or import_module)(module, package=package)


def reload_from_cwd(module: ModuleType, reloader: Callable | None = None) -> Any:
    """Reload ``module`` with the working directory on the path."""
    with cwd_in_path():
        return (reloader or reload)(module)


def module_file(module: ModuleType) -> str:
    """The source file of ``module`` (``.py`` for a ``.pyc``)."""
    name = module.__file__ or ""
    return name[:-1] if name.endswith(".pyc") else name


def gen_task_name(app: Celery, name: str, module_name: str | None) -> str:
    """A task's default name: ``module.name``; in ``__main__``, ``app.main`` for the module."""
    module_name = module_name or "__main__"
    module = sys.modules.get(module_name)
    if module is not None:
        module_name = module.__name__
    if module_name == "__main__" and app.main:
        return f"{app.main}.{name}"
    return ".".join(part for part in (module_name, name) if part)
