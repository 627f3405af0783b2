"""``install_as_celery()``: ``import celery`` gives the facade, as ``pymysql.install_as_MySQLdb()``.

After ``spinach_compat.install_as_celery()``, ``celery`` *is* the ``spinach_compat`` module
and ``celery.X`` *is* ``spinach_compat.X`` (the same module objects, so
``celery.Task is spinach_compat.Task``), whether or not real Celery is installed. Code that
says ``import celery``, a project's or a third-party package's built on Celery's public
API, then runs on the facade unchanged. A ``sys.meta_path`` finder, first in the list, does
it:

- ``celery.X`` when the facade has ``spinach_compat.X``: that module;
- ``celery.X`` when Celery has such a module but the facade does not:
  ``UnsupportedFeature`` naming it (loud on purpose: a project's ``except ImportError``
  fallback must not silently replace a Celery feature);
- ``celery.X`` that no Celery has: ``ModuleNotFoundError``, as real Celery would raise;
- the modules of integrations that patch Celery's internals (sentry-sdk's
  ``CeleryIntegration``, ``opentelemetry-instrumentation-celery``): the facade's stand-ins
  (``spinach_compat.integrations``), which say what to use instead.

It must run before anything imports real Celery: ``install_as_celery()`` refuses to run
after, naming the modules that imported it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import FunctionType, ModuleType
from typing import Any, NoReturn

from .exceptions import UnsupportedFeature

FACADE, CELERY = "spinach_compat", "celery"
GUIDE = "migration_guide/features.md#the-celery-import-shim"

#: Celery 5.7's modules (``package: submodules``): a ``celery.X`` listed here that the facade
#: lacks is refused loudly; one not listed raises ``ModuleNotFoundError`` as in Celery.
_CELERY_MODULES = """
celery: __main__ _state app apps backends beat bin bootsteps canvas concurrency contrib events
    exceptions fixups loaders local platforms result schedules security signals states utils
    worker
celery.app: amqp annotations autoretry backends base builtins control defaults events log
    registry routes task trace utils
celery.apps: beat multi worker
celery.backends: arangodb asynchronous azureblockblob base cache cassandra consul cosmosdbsql
    couchbase couchdb database dynamodb elasticsearch filesystem gcs mongodb redis rpc s3
celery.backends.database: models session
celery.bin: amqp base beat call celery control events graph list logtool migrate multi purge
    result shell upgrade worker
celery.concurrency: asynpool base eventlet gevent prefork solo thread
celery.contrib: abortable django migrate pytest rdb sphinx testing
celery.contrib.django: task
celery.contrib.testing: app manager mocks tasks worker
celery.events: cursesmon dispatcher dumper event receiver snapshot state
celery.fixups: django
celery.loaders: app base default
celery.security: certificate key serialization utils
celery.utils: abstract annotations collections debug deprecated dispatch functional graph
    imports iso8601 log nodenames objects quorum_queues saferepr serialization static sysinfo
    term text threads time timer2
celery.utils.dispatch: signal
celery.worker: autoscale components consumer control heartbeat loops pidbox request state
    strategy worker
celery.worker.consumer: agent connection consumer control delayed_delivery events gossip
    heart mingle tasks
"""

#: Modules of third-party integrations that patch Celery's internals -> the facade's
#: stand-in, which says what works instead (their submodules are refused).
STAND_INS = {
    "sentry_sdk.integrations.celery": f"{FACADE}.integrations.sentry",
    "opentelemetry.instrumentation.celery": f"{FACADE}.integrations.opentelemetry",
}

#: Where the importers of real Celery often come from, and what to do about each.
_IMPORTER_HINTS = {
    "sentry_sdk": "sentry_sdk.init() imports celery for its Celery integration",
    "opentelemetry": "opentelemetry-instrument imports celery for its Celery instrumentor "
    "(exclude it with OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=celery)",
}


def _parse_modules(table: str) -> frozenset[str]:
    """The dotted names of ``_CELERY_MODULES``."""
    names = {CELERY}
    for entry in table.replace("\n    ", " ").strip().splitlines():
        package, _, children = entry.partition(":")
        names.update(f"{package}.{child}" for child in children.split())
    return frozenset(names)


CELERY_MODULES = _parse_modules(_CELERY_MODULES)


class CeleryAlreadyImported(RuntimeError):
    """``install_as_celery()`` ran after real Celery was imported: too late to swap it."""


def is_celery_module(name: str) -> bool:
    """Whether ``name`` is one of (Celery 5.7's) ``celery`` modules."""
    return name in CELERY_MODULES


def _is_package(name: str) -> bool:
    return any(module.startswith(name + ".") for module in CELERY_MODULES)


def installed() -> bool:
    """Whether ``import celery`` gives the facade in this process."""
    return sys.modules.get(CELERY) is sys.modules[FACADE] and _FINDER in sys.meta_path


def install_as_celery() -> None:
    """Make ``import celery`` (and ``celery.X``) give the facade; a second call does nothing.

    Raises ``CeleryAlreadyImported`` when real Celery was imported first: call it before
    anything imports ``celery``, at the top of the module that starts the process.
    """
    facade = sys.modules[FACADE]
    current = sys.modules.get(CELERY)
    if current is not None and current is not facade:
        raise CeleryAlreadyImported(_too_late_message())
    sys.modules[CELERY] = facade
    for name, module in list(sys.modules.items()):
        if name.startswith(FACADE + "."):
            sys.modules.setdefault(CELERY + name[len(FACADE) :], module)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


# -- the finder ----------------------------------------------------------------------------


class _CeleryAliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``celery.X`` (and the stand-ins' names); loads them as the facade's modules.

    The module is imported under its own name and registered under the asked one; its
    ``__spec__`` stays its own (the import system sets the asked one, ``exec_module``
    puts it back), so nothing runs twice and relative imports inside it are unchanged.
    """

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.startswith(FACADE + "."):
            return _facade_spec(fullname, path)
        target_name = _target_of(fullname)
        if target_name is None:
            return None
        try:
            found = importlib.util.find_spec(target_name)
        except ModuleNotFoundError:  # its parent is missing too
            found = None
        if found is None:
            _missing(fullname)
        return importlib.machinery.ModuleSpec(
            fullname, self, loader_state=target_name,
            is_package=found.submodule_search_locations is not None,
        )  # fmt: skip

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(spec.loader_state)
        spec.loader_state = module.__spec__  # given back by exec_module
        return module

    def exec_module(self, module: ModuleType) -> None:
        if module.__spec__ is not None:
            module.__spec__ = module.__spec__.loader_state  # already executed: its own spec back


_FINDER = _CeleryAliases()


def _facade_spec(fullname: str, path: Any) -> importlib.machinery.ModuleSpec | None:
    """A facade module's own spec; loud when Celery has it and the facade does not.

    ``from celery import bootsteps`` looks for ``spinach_compat.bootsteps`` (the module
    ``celery`` is named so), never ``celery.bootsteps``: it is refused here.
    """
    spec = importlib.machinery.PathFinder.find_spec(fullname, path)
    if spec is None and is_celery_module(CELERY + fullname[len(FACADE) :]):
        _missing(CELERY + fullname[len(FACADE) :])
    return spec


def _target_of(fullname: str) -> str | None:
    """The facade module standing for ``fullname``, or None when the shim leaves it alone."""
    if fullname == CELERY or fullname.startswith(CELERY + "."):
        return FACADE + fullname[len(CELERY) :]
    for name, stand_in in STAND_INS.items():
        if fullname == name:
            return stand_in
        if fullname.startswith(name + "."):
            raise UnsupportedFeature(
                f"{fullname} is not supported under spinach_compat.install_as_celery(): "
                f"{name} is replaced by a stand-in (see {GUIDE})"
            )
    return None


def _missing(fullname: str) -> NoReturn:
    """Raise for a ``celery.X`` the facade lacks: loudly when Celery has it."""
    if is_celery_module(fullname):
        from .surface import refusal

        what = f"{fullname} (a package: all its modules)" if _is_package(fullname) else fullname
        reason = refusal(fullname) or "spinach_compat has no counterpart of it yet"
        raise UnsupportedFeature(
            f"Celery's module {what} is not supported by spinach_compat, which `import celery` "
            f"gives here (spinach_compat.install_as_celery()): {reason} (see {GUIDE})"
        )
    raise ModuleNotFoundError(
        f"No module named {fullname!r} (celery is spinach_compat here, and neither Celery nor "
        "spinach_compat has that module)",
        name=fullname,
    )


# -- who imported real Celery --------------------------------------------------------------


def celery_importers() -> list[str]:
    """Modules (not Celery's own) whose globals hold a ``celery`` module or object from it."""
    found = []
    for name, module in list(sys.modules.items()):
        if name == CELERY or name.startswith(CELERY + ".") or type(module) is not ModuleType:
            continue
        try:
            values = list(vars(module).values())
        except TypeError:
            continue
        if any(_from_celery(value) for value in values):
            found.append(name)
    return sorted(found)


def _from_celery(value: Any) -> bool:
    """Whether ``value`` comes from real Celery (read without evaluating lazy proxies)."""
    kind = type(value)  # never value.__class__: Celery's proxies would evaluate themselves
    try:
        if issubclass(kind, ModuleType):
            origin = value.__name__
        elif issubclass(kind, type) or kind is FunctionType:
            origin = value.__module__
        else:
            origin = kind.__module__
    except Exception:  # an exotic object: not evidence either way
        return False
    return isinstance(origin, str) and (origin == CELERY or origin.startswith(CELERY + "."))


def _too_late_message() -> str:
    importers = celery_importers()
    if not importers:
        found = (
            "no loaded module holds it any more (find what imports it first with "
            "`python -X importtime ...`)"
        )
    else:
        found = "it was imported by " + ", ".join(importers)
        hints = {hint for top, hint in _IMPORTER_HINTS.items() for m in importers
                 if m.split(".")[0] == top}  # fmt: skip
        found += "".join(f"; {hint}" for hint in sorted(hints))
    return (
        "spinach_compat.install_as_celery() was called after the real celery package was "
        f"imported: {found}. Call install_as_celery() before them, at the top of the module "
        "that starts the process (e.g. the project's __init__.py, manage.py or the module "
        "of its Celery app), or set SPINACH_AS_CELERY=1 for the spinach-compat command "
        f"(see {GUIDE})"
    )


def check_task_base(base: Any, task_name: str) -> None:
    """Refuse a task ``base`` that is real Celery's ``Task`` (or a subclass) instead of the
    facade's: its module ran ``from celery import Task`` before the shim was installed."""
    from .app.task import Task

    if isinstance(base, type) and issubclass(base, Task):
        return
    if isinstance(base, type) and any(_from_celery(cls) for cls in base.__mro__):
        raise UnsupportedFeature(
            f"task {task_name!r}: base={base.__module__}.{base.__qualname__} subclasses real "
            "Celery's celery.Task, not spinach_compat's: call spinach_compat.install_as_celery() "
            f"before {base.__module__} is imported, so that its `from celery import Task` gives "
            f"the facade's Task (see {GUIDE})"
        )
    raise UnsupportedFeature(
        f"task {task_name!r}: base={base!r} is not supported by spinach_compat: the base of "
        "tasks must subclass spinach_compat.Task (see migration_guide/)"
    )
