"""The scanned project's modules: what each defines (apps, tasks, task classes), so an
import of ``app`` or of a task from another module of the project keeps its kind."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from . import thirdparty
from .kinds import FOREIGN, MODULE, Kind


@dataclass
class Project:
    """Module names of the project, their globals' kinds, and the settings namespaces."""

    modules: set[str] = field(default_factory=set)
    packages: set[str] = field(default_factory=set)  #: modules that are ``__init__.py``
    globals: dict[str, dict[str, Kind | None]] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)
    configs: set[str] = field(default_factory=set)  #: modules given to config_from_object
    _suffixes: dict[str, str] = field(default_factory=dict)  # "tasks" -> "src.proj.tasks"

    def find_config(self, module: str) -> bool:
        """Whether ``module`` is one given to ``config_from_object``."""
        return any(self.find(config) == module for config in self.configs)

    def find(self, module: str) -> str | None:
        """The project module ``module`` names (also under a ``src/``-like prefix)."""
        if module in self.modules:
            return module
        if not self._suffixes:
            for name in sorted(self.modules, reverse=True):  # the first in order wins
                parts = name.split(".")
                for start in range(1, len(parts)):
                    self._suffixes[".".join(parts[start:])] = name
        return self._suffixes.get(module)

    def absolute(self, current: str, module: str, level: int) -> str:
        """The absolute name of ``from <level dots><module> import ...`` in ``current``."""
        if level == 0:
            return module
        package = current if current in self.packages else current.rpartition(".")[0]
        parts = package.split(".") if package else []
        parts = parts[: len(parts) - (level - 1)] if level > 1 else parts
        return ".".join([*parts, module] if module else parts)

    def module_kind(self, module: str) -> Kind | None:
        """``import x``: a project module, a foreign one, or unknown."""
        found = self.find(module)
        if found:
            return Kind(MODULE, module=found)
        return Kind(FOREIGN, module=module) if is_foreign(module) else None

    def imported_kind(self, module: str, name: str, relative: bool) -> Kind | None:
        """``from module import name``: its kind in the project, foreign, or unknown."""
        found = self.find(module)
        if found is None:
            foreign = not relative and is_foreign(module)
            return Kind(FOREIGN, module=f"{module}.{name}") if foreign else None
        submodule = self.find(f"{found}.{name}")
        if submodule:
            return Kind(MODULE, module=submodule)
        return self.globals.get(found, {}).get(name)

    def global_kind(self, module: str, name: str) -> Kind | None:
        """``module.name`` of a project module."""
        submodule = self.find(f"{module}.{name}")
        if submodule:
            return Kind(MODULE, module=submodule)
        return self.globals.get(module, {}).get(name)


def is_foreign(module: str) -> bool:
    """A module known not to be Celery's nor the project's: the standard library's, or a
    package of ``thirdparty`` (anything else may be a project module the scan missed)."""
    top = module.split(".")[0]
    return top in sys.stdlib_module_names or thirdparty.package_of_module(module) is not None


def module_name(path: str) -> str:
    """``proj/tasks.py`` -> ``proj.tasks``; ``proj/__init__.py`` -> ``proj``."""
    parts = path[: -len(".py")].replace("\\", "/").split("/")
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)
