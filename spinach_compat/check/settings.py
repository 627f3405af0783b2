"""Settings in Python code: ``Celery(...)`` keywords, ``app.conf``, ``conf.update(...)``,
Django-style ``CELERY_*`` names, and ``beat_schedule`` entries; judged on their values."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

from .rules import RULES, UNKNOWN

#: ``Celery(...)`` keywords that are not settings, and those naming one.
NOT_SETTINGS = frozenset({"set_as_current", "main"})
ALIASES = {"broker": "broker_url", "backend": "result_backend"}


class SettingsMixin:
    """The settings part of the Python visitor (needs ``add`` and ``project``)."""

    add: Any
    module: str
    project: Any
    scopes: list

    def celery_kwargs(self, node: ast.Call) -> None:
        for keyword in node.keywords:
            if keyword.arg and keyword.arg not in NOT_SETTINGS:
                key = ALIASES.get(keyword.arg, keyword.arg)
                self.add(keyword, f"setting:{key}", literal(keyword.value))

    def settings_call(self, node: ast.Call, func: ast.Attribute) -> None:
        """``conf.update(...)`` and ``control.revoke(terminate=..., destination=...)``."""
        if func.attr == "update" and _attr_name(func.value) == "conf":
            self.settings(node)
        elif func.attr == "revoke" and _attr_name(func.value) == "control":
            for keyword in (k for k in node.keywords if k.arg in ("terminate", "destination")):
                self.add(keyword, f"control:revoke({keyword.arg})", literal(keyword.value))

    def settings(self, node: ast.Call) -> None:
        for argument in node.args:
            if isinstance(argument, ast.Dict):
                for key, value in zip(argument.keys, argument.values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        self.setting(key, key.value, value)
        for keyword in node.keywords:
            if keyword.arg:
                self.setting(keyword, keyword.arg, keyword.value)

    def setting(self, node: ast.AST, key: str, value: ast.expr) -> None:
        self.add(node, f"setting:{key}", literal(value) if key != "beat_schedule" else UNKNOWN)
        if key == "beat_schedule" and isinstance(value, ast.Dict):
            self.beat_entries(value)

    def beat_entries(self, schedule: ast.Dict) -> None:
        """Entries with a fixed period; crontab/solar calls are reported where called."""
        for entry in schedule.values:
            if isinstance(entry, ast.Dict):
                for key, value in zip(entry.keys, entry.values, strict=True):
                    if _is_period(key, value):
                        self.add(value, "schedule:period", label="beat entry schedule")

    def assignment(self, node: ast.AST, target: ast.expr, value: ast.expr) -> None:
        """``app.conf.key = v``, ``app.conf['key'] = v`` and ``CELERY_KEY = v`` settings."""
        if isinstance(target, ast.Attribute) and _attr_name(target.value) == "conf":
            self.setting(node, target.attr, value)
        elif isinstance(target, ast.Subscript) and _attr_name(target.value) == "conf":
            if isinstance(target.slice, ast.Constant) and isinstance(target.slice.value, str):
                self.setting(node, target.slice.value, value)
        elif isinstance(target, ast.Name):
            key = namespaced(target.id, self.project.namespaces) or self.config_key(target.id)
            if key:
                self.setting(node, key, value)

    def config_key(self, name: str) -> str | None:
        """``broker_url = ...`` at the top of a module given to ``config_from_object``."""
        in_config = self.project.find_config(self.module) and len(self.scopes) == 1
        return name if in_config and name.islower() and not name.startswith("_") else None


def config_sources(tree: ast.Module) -> Iterator[tuple[str, str]]:
    """``("namespace", "CELERY")`` and ``("module", "proj.celeryconfig")`` for each
    ``config_from_object`` given a literal namespace, a module path or an imported module."""
    imported: dict[str, str] = {}
    calls: list[ast.Call] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update((a.asname or a.name, a.name) for a in node.names)
        elif isinstance(node, ast.Call) and _attr_name(node.func) == "config_from_object":
            calls.append(node)
    for node in calls:
        for keyword in node.keywords:
            if keyword.arg == "namespace" and isinstance(keyword.value, ast.Constant):
                yield "namespace", str(keyword.value.value)
        source = node.args[0] if node.args else None
        if isinstance(source, ast.Constant) and isinstance(source.value, str):
            if ":" not in source.value:  # "django.conf:settings" is an object, not a module
                yield "module", source.value
        elif isinstance(source, ast.Name) and source.id in imported:
            yield "module", imported[source.id]


def namespaced(name: str, spaces: set[str]) -> str | None:
    """``CELERY_BROKER_URL`` -> ``broker_url`` for the namespace ``CELERY``."""
    for namespace in spaces:
        prefix = f"{namespace}_"
        if name.startswith(prefix) and name.isupper() and len(name) > len(prefix):
            return name[len(prefix) :].lower()
    return None


def _is_period(key: ast.expr | None, value: ast.expr) -> bool:
    """A beat entry's ``schedule`` that is not a call of a schedule class (judged as one)."""
    if not (isinstance(key, ast.Constant) and key.value == "schedule"):
        return False
    if not isinstance(value, ast.Call):
        return True
    return not any(key.endswith("." + (_attr_name(value.func) or "")) for key in RULES)


def _attr_name(node: ast.AST) -> str | None:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)


def literal(node: ast.AST) -> Any:
    """The value of a literal expression, else ``UNKNOWN``."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return UNKNOWN
