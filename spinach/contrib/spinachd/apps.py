"""The Django app: the engine, the discovery of ``tasks.py`` modules, the job signals."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from django.apps import AppConfig, apps
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, reset_queries
from django.utils.module_loading import module_has_submodule

from ... import signals
from ...engine import Engine
from ...job import Job
from ...task import Tasks
from . import settings

#: The engine of the project, built from its settings (upstream Spinach's name).
spin = Engine(settings.broker(), namespace=settings.namespace())


class SpinachdConfig(AppConfig):
    name = "spinach.contrib.spinachd"
    label = "spinachd"
    verbose_name = "Spinach"

    def ready(self) -> None:
        signals.job_started.connect(_job_started, sender=spin.namespace)
        signals.job_finished.connect(_job_finished, sender=spin.namespace)
        for registry in discover_tasks():
            spin.attach_tasks(registry)


def discover_tasks(module_name: str = "tasks") -> list[Tasks]:
    """The ``tasks`` registry of each installed app's ``tasks`` module, importing them.

    Raises ``ImproperlyConfigured`` naming both modules when two register one task name.
    """
    found: list[Tasks] = []
    owners: dict[str, str] = {}  # task name -> the module registering it
    for module in _task_modules(module_name):
        registry = getattr(module, "tasks", None)
        if not isinstance(registry, Tasks):
            continue
        for name in registry.names:
            owner = owners.setdefault(name, module.__name__)
            if owner != module.__name__:
                raise ImproperlyConfigured(
                    f"task '{name}' is registered by both {owner} and {module.__name__}: "
                    "give one of them another name"
                )
        found.append(registry)
    return found


def _task_modules(module_name: str) -> list[ModuleType]:
    modules = []
    for config in apps.get_app_configs():
        if module_has_submodule(config.module, module_name):  # its import errors propagate
            modules.append(importlib.import_module(f"{config.name}.{module_name}"))
    return modules


def _job_started(namespace: str, job: Job, **kwargs: Any) -> None:
    reset_queries()
    close_old_connections()


def _job_finished(namespace: str, job: Job, **kwargs: Any) -> None:
    close_old_connections()
