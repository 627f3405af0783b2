"""Verdicts on Celery names, derived from the installed facade itself.

A Celery name a codebase uses (``celery.x.y``, or an attribute of an app, a task, a
signature or a result) is looked up in ``spinach_compat``: the module ``spinach_compat.x``
is imported and ``y`` looked up on it, or the attribute on the facade's class. A name found
in ``surface.REFUSED`` is unsupported with its reason; a name that does not resolve is
unsupported; a name that resolves is supported, unless ``RULES`` knows a difference (a name
that exists only to raise ``UnsupportedFeature`` when called, a signal never sent).
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any, TypeGuard

from .. import surface
from . import instances
from .rules import DIFFERENT, RULES, SUPPORTED, UNSUPPORTED, Rule, rule_for

FACADE = "spinach_compat"
_MISSING = object()


#: Classes an object of a class may be instead, as Celery's: a task is a ``DjangoTask``
#: under Django (Celery's Django fix-up), with ``delay_on_commit``; an app or a task read
#: through ``current_app``/``current_task`` is a proxy (``_get_current_object``).
_PROXY = ("celery.local.Proxy", "an attribute of the current_app/current_task proxy")

VARIANTS: dict[str, tuple[tuple[str, str], ...]] = {
    "celery.app.task.Task": (
        (
            "celery.contrib.django.task.DjangoTask",
            "a DjangoTask attribute: tasks have it when DJANGO_SETTINGS_MODULE is set, as in "
            "Celery",
        ),
        _PROXY,
    ),
    "celery.app.base.Celery": (_PROXY,),
}


@dataclass(frozen=True)
class Verdict:
    """A name's status, note and guide section."""

    status: str
    note: str
    section: str


def _facade_name(celery_name: str) -> str:
    return FACADE + celery_name[len("celery") :]


def _import(module: str) -> Any:
    try:
        if module.endswith(".__main__"):  # never run a command to look it up
            spec = importlib.util.find_spec(module)
            return module if spec is not None else _MISSING
        return importlib.import_module(module)
    except Exception:  # ImportError, or UnsupportedFeature from a module refused by name
        return _MISSING


def _getattr(owner: Any, name: str) -> Any:
    """``owner.name``, a submodule of a module, or ``_MISSING`` (a refusal counts as missing)."""
    try:
        found = inspect.getattr_static(owner, name)
    except AttributeError:
        try:
            found = getattr(owner, name)
        except Exception:
            found = _MISSING
    if found is _MISSING and inspect.ismodule(owner):
        found = _import(f"{owner.__name__}.{name}")
    return found


@functools.cache
def resolve(celery_name: str) -> Any:
    """The facade's object for ``celery.x.y`` (a module or a name), or ``_MISSING``."""
    parts = celery_name.split(".")
    if parts[0] != "celery":
        return _MISSING
    found = _import(FACADE)
    for part in parts[1:]:
        if found is _MISSING:
            break
        found = _getattr(found, part)
    return found


def forget() -> None:
    """Forget what was resolved (for a facade changed at run time, as tests do)."""
    resolve.cache_clear()
    instance_attributes.cache_clear()
    instances.instance_dict.cache_clear()
    from .kinds import family

    family.cache_clear()


def resolves(celery_name: str) -> bool:
    """Whether the facade has ``celery_name`` (a module or a name in one)."""
    return resolve(celery_name) is not _MISSING


@functools.cache
def instance_attributes(cls: type) -> frozenset[str]:
    """Names its methods assign on ``self`` (``self.x = ...``), through the MRO."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] != FACADE:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if is_self_store(node):
                names.add(node.attr)
    return frozenset(names)


def is_self_store(node: ast.AST) -> TypeGuard[ast.Attribute]:
    """``self.x = ...``: an attribute its class defines."""
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def has_attribute(celery_class: str, attr: str) -> bool:
    """Whether the facade's class for ``celery_class`` has ``attr`` (class or instance)."""
    cls = resolve(celery_class)
    if not isinstance(cls, type):
        return False
    if _getattr(cls, attr) is not _MISSING or attr in instance_attributes(cls):
        return True
    return attr in instances.instance_dict(celery_class)


def refusal(celery_name: str) -> str | None:
    """Why ``celery_name``, or the module or class it is in, is refused (``surface``)."""
    parts = celery_name.split(".")
    keys = (".".join(parts[:end]) for end in range(len(parts), 1, -1))
    return next(filter(None, map(surface.refusal, keys)), None)


def name_verdict(celery_name: str) -> Verdict:
    """The verdict on ``celery.x.y``, imported or used by the codebase."""
    reason = refusal(celery_name) or refusal(canonical(celery_name))
    if reason:
        key = _name_rule_key(celery_name)
        rule = RULES[key] if key != "name:*" else _reexported_rule(celery_name)
        return Verdict(UNSUPPORTED, reason, (rule or rule_for("name:*")).section)
    if not resolves(celery_name):
        rule = _reexported_rule(celery_name)
        if rule is not None:
            return Verdict(UNSUPPORTED, rule.note, rule.section)
        return Verdict(UNSUPPORTED, "not in spinach_compat", rule_for("module:*").section)
    return _with_rule(_name_rule_key(celery_name), "name:*")


def _reexported_rule(celery_name: str) -> Rule | None:
    """The rule of ``celery.canvas.x`` for ``celery.x`` (Celery's top level re-exports)."""
    parts = celery_name.split(".")
    if len(parts) != 2:
        return None
    suffix = "." + parts[1]
    return next((r for k, r in RULES.items() if k.startswith("name:") and k.endswith(suffix)), None)


def module_verdict(celery_module: str) -> Verdict:
    """The verdict on importing ``celery.x``: its facade module must import."""
    reason = refusal(celery_module)
    if reason:
        return Verdict(UNSUPPORTED, reason, rule_for("module:*").section)
    found = resolve(celery_module)
    if not (inspect.ismodule(found) or (celery_module.endswith(".__main__") and found)):
        rule = rule_for("module:*")
        return Verdict(UNSUPPORTED, rule.note, rule.section)
    note = f"import it from {_facade_name(celery_module)}"
    return Verdict(SUPPORTED, note, RULES["name:*"].section)


def attribute_verdict(celery_class: str, attr: str) -> Verdict:
    """The verdict on ``obj.attr`` where ``obj`` is an instance of ``celery_class``."""
    names = (f"{celery_class}.{attr}", f"{canonical(celery_class)}.{attr}")
    reason = next(filter(None, map(refusal, names)), None)
    if reason:
        return Verdict(UNSUPPORTED, reason, rule_for("attr:*").section)
    if not has_attribute(celery_class, attr):
        for variant, note in VARIANTS.get(celery_class, ()):
            if has_attribute(variant, attr):
                return Verdict(SUPPORTED, note, rule_for("attr:*").section)
        label = celery_class.rsplit(".", 1)[1]
        note = f"{label} has no attribute {attr!r} in spinach_compat"
        return Verdict(UNSUPPORTED, note, rule_for("module:*").section)
    key = next((f"attr:{n}" for n in names if f"attr:{n}" in RULES), "attr:*")
    return _with_rule(key, "attr:*")


def canonical(celery_name: str) -> str:
    """``celery.group`` -> ``celery.canvas.group``: where the facade defines the object."""
    found = resolve(celery_name)
    if not (inspect.isclass(found) or inspect.isfunction(found)) or "<" in found.__qualname__:
        return celery_name
    return surface.celery_name(found.__module__) + "." + found.__qualname__


def _name_rule_key(celery_name: str) -> str:
    for key in (f"name:{celery_name}", f"name:{canonical(celery_name)}"):
        if key in RULES:
            return key
    if celery_name.startswith("celery.signals."):
        return f"signal:{celery_name.split('.')[2]}"
    return "name:*"


def _with_rule(key: str, fallback: str) -> Verdict:
    """A resolved name: supported, or the difference ``RULES`` knows for it."""
    rule = RULES.get(key) or RULES[fallback]
    status = rule.status if rule.status in (DIFFERENT, UNSUPPORTED) else SUPPORTED
    return Verdict(status, rule.note, rule.section)
