"""What an expression of the scanned code is: a Celery app, task, signature or result, a
Celery class, a module of the project, or something that is not Celery's at all.

The checker follows these kinds through imports, assignments and calls, so that an
attribute of an app (``app.on_after_finalize``) or of a task (``self.replace``) is looked up
on the facade's class, and an ``apply_async`` of a ``multiprocessing.Pool`` is left alone.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

from . import facade

INSTANCE, CLASS, MODULE, FOREIGN = "instance", "class", "module", "foreign"
APP_CLASS, TASK_CLASS = "celery.app.base.Celery", "celery.app.task.Task"
SIGNATURE_CLASS, RESULT_CLASS = "celery.canvas.Signature", "celery.result.AsyncResult"
GROUP_CLASS, GROUP_RESULT_CLASS = "celery.canvas.group", "celery.result.GroupResult"
CONTROL_CLASS, INSPECT_CLASS = "celery.app.control.Control", "celery.app.control.Inspect"

#: The facade classes each family of Celery objects derives from.
FAMILIES = {
    "app": APP_CLASS,
    "task": TASK_CLASS,
    "signature": SIGNATURE_CLASS,
    "result": "celery.result.ResultBase",
    "control": CONTROL_CLASS,
    "inspect": INSPECT_CLASS,
}


@dataclass(frozen=True)
class Kind:
    """What an expression is; ``own`` are the attributes a project's subclass defines."""

    role: str
    celery_class: str = ""  #: Celery's dotted name of the (base) class
    own: frozenset[str] = frozenset()
    module: str = ""  #: a project module's name, or the module a foreign name comes from

    def instance(self) -> Kind:
        """What calling this class gives."""
        return Kind(INSTANCE, self.celery_class, self.own)

    @property
    def family(self) -> str | None:
        return family(self.celery_class) if self.role in (INSTANCE, CLASS) else None


APP = Kind(INSTANCE, APP_CLASS)
TASK = Kind(INSTANCE, TASK_CLASS)
SIGNATURE = Kind(INSTANCE, SIGNATURE_CLASS)
RESULT = Kind(INSTANCE, RESULT_CLASS)
GROUP_RESULT = Kind(INSTANCE, GROUP_RESULT_CLASS)
CONTROL = Kind(INSTANCE, CONTROL_CLASS)
INSPECT = Kind(INSTANCE, INSPECT_CLASS)

#: Celery names standing for an object of a kind (proxies): followed, not resolved further.
PROXIES = {"current_app": APP, "current_task": TASK}
#: Celery functions returning an object of a kind.
FUNCTION_RESULTS = {"signature": SIGNATURE, "maybe_signature": SIGNATURE, "subtask": SIGNATURE}
#: ``family -> {method: what it returns}``.
METHOD_RESULTS: dict[str, dict[str, Kind]] = {
    "task": {
        **dict.fromkeys(("s", "si", "signature", "subtask"), SIGNATURE),
        **dict.fromkeys(("delay", "apply_async", "apply", "AsyncResult"), RESULT),
    },
    "signature": {
        **dict.fromkeys(("clone", "set", "on_error", "link", "link_error", "s", "si"), SIGNATURE),
        **dict.fromkeys(("delay", "apply_async", "apply"), RESULT),
    },
    "app": {
        "signature": SIGNATURE,
        "send_task": RESULT,
        "AsyncResult": RESULT,
        "GroupResult": GROUP_RESULT,
    },
    "result": {},
    "control": {"inspect": INSPECT},
    "inspect": {},
}
#: ``(family, attribute) -> kind``: ``self.app`` of a task is its app, ``app.control``...
ATTRIBUTE_KINDS = {("task", "app"): APP, ("app", "control"): CONTROL}


def proxy_kind(celery_name: str) -> Kind | None:
    """The kind a proxy name stands for (``celery.current_app``), else None."""
    return PROXIES.get(celery_name.rsplit(".", 1)[-1])


def name_kind(celery_name: str) -> Kind | None:
    """The kind of a Celery name: a proxy, a facade class, else None."""
    proxy = proxy_kind(celery_name)
    if proxy is not None:
        return proxy
    found = facade.resolve(celery_name)
    if inspect.isclass(found) and family(facade.canonical(celery_name)):
        return Kind(CLASS, facade.canonical(celery_name))
    return None


def call_kind(callee: Kind | None, celery_name: str | None, method: str | None) -> Kind | None:
    """What a call returns, from its callee's kind, Celery name or method name."""
    if callee is not None and callee.role == CLASS:
        return callee.instance()
    if callee is not None and callee.role == FOREIGN:
        return callee
    if celery_name:
        return FUNCTION_RESULTS.get(celery_name.rsplit(".", 1)[-1])
    return None


def method_kind(owner: Kind | None, method: str) -> Kind | None:
    """What ``owner.method(...)`` returns, when it is a Celery object's method."""
    if owner is None or owner.role != INSTANCE or owner.family is None:
        return owner if owner is not None and owner.role == FOREIGN else None
    found = METHOD_RESULTS[owner.family].get(method)
    if found is RESULT and owner.celery_class == GROUP_CLASS:
        return GROUP_RESULT
    return found


def attribute_kind(owner: Kind | None, attr: str) -> Kind | None:
    """What ``owner.attr`` is, as far as the checker follows it."""
    if owner is None:
        return None
    if owner.role == FOREIGN:
        return owner
    return ATTRIBUTE_KINDS.get((owner.family or "", attr))


@functools.cache
def family(celery_class: str) -> str | None:
    """``app``, ``task``, ``signature`` or ``result``: which facade class it derives from."""
    found = facade.resolve(celery_class)
    if not inspect.isclass(found):
        return None
    for name, base in FAMILIES.items():
        base_class = facade.resolve(base)
        if inspect.isclass(base_class) and issubclass(found, base_class):
            return name
    return None
