"""Celery's public names the facade refuses, each with its reason and the way out.

Every public name of the Celery modules a project imports either exists in the facade with
Celery's behaviour or is listed in ``REFUSED``: using it raises ``UnsupportedFeature`` with
the reason, never an ``AttributeError`` a project would take for a typo, never a silent
no-op. Keys are Celery's dotted names: ``celery.module.name`` for a module's name,
``celery.module.Class.attr`` for an attribute of one of its classes.

A facade module refuses its listed names with ``__getattr__ = module_getattr(__name__)``;
a class refuses the attributes listed for its Celery class that it does not define with
``refuse_missing(cls, "celery.module.Class")`` (one ``refused_attribute`` each): reading one
raises ``RefusedAttributeError``, an ``UnsupportedFeature`` that is an ``AttributeError``
too, so ``hasattr``, ``getattr(obj, name, default)`` and introspection (``inspect``,
``mock``'s autospec) see the name as absent, as Celery's own code does for a name an object
lacks; only a direct read raises. (A class with a ``__getattr__`` would be asked for the
name after that error: the wired classes have none.) A subclass setting a name Celery's
machinery would read (``Task.Strategy``, ``Celery.amqp_cls``) is refused when declared, by
``refuse_overrides``: nothing here would read it. A class
projects import and subclass but the facade cannot run (a custom bootstep) exists and
refuses when instantiated, with ``__init__ = refused_init(name)``. A
whole Celery module the facade refuses is a key too (``celery.concurrency``): importing
``spinach_compat.concurrency`` raises, through the import hook installed below (it acts
only when no such facade module exists). The checker (``spinach_compat.check``) reads the
same table, so both always agree; ``tests/compat/surface/`` checks every entry against
Celery's inventory (``scripts/celery_inventory.py``).
"""

from __future__ import annotations

import dis
import importlib.abc
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

from .exceptions import UnsupportedFeature

_GUIDE = "see migration_guide/features.md#"
#: Names other work is bringing to the facade: the entry goes when the name lands.
_PENDING = "not supported yet (being added to spinach_compat): " + _GUIDE + "celerys-public-surface"
_KOMBU = (
    "publishing kombu messages would bypass the facade's jobs: send tasks with "
    "apply_async, delay or app.send_task, and use app.connection() for a broker health check"
)
_POOLS = (
    "choose the pool with -P (prefork, threads, gevent, solo) and size it with -c or "
    "--autoscale; a prefork pool is resized remotely (pool_grow, pool_shrink, autoscale); "
    + _GUIDE
    + "worker-pools"
)
_CLICK = (
    "Celery's click command line is not used: the command is spinach-compat "
    "(spinach_compat.bin.celery.main); " + _GUIDE + "worker-command-line"
)
_DAEMON = (
    "Celery's daemon helpers are not provided: the worker detaches and drops privileges "
    "with its own -D, --uid and --gid options; " + _GUIDE + "deployment"
)
_NO_BEAT = (
    "beat does not answer remote control (inspect ping): watch the beat process with your "
    "supervisor; " + _GUIDE + "periodic-tasks-beat"
)
_STEPS = (
    "the worker has no bootstep blueprint, so a custom step could not run: start a "
    "thread from a worker_ready receiver and stop it on worker_shutdown"
)
_PROMISE = "results are not vine promises: chain the work with link= or a chain instead"
_INTERNAL = "an internal of Celery's {}, not a public API: {}"
_COMPAT3 = "a Celery 3 compatibility module, removed from spinach_compat: {}"
_APP_CLASS = (
    "custom app component classes are not supported: subclass spinach_compat.Task "
    "and pass task_cls= for tasks; other components are fixed"
)

#: Celery's dotted name -> why the facade refuses it and what to do instead.
REFUSED: dict[str, str] = {
    # -- celery, celery.app ----------------------------------------------------------------
    "celery.bugreport": "not supported: report spinach_compat.__version__ and spinach's version",
    "celery.execute": _COMPAT3.format("call task.apply_async or app.send_task"),
    "celery.log": _COMPAT3.format("use spinach_compat.utils.log"),
    "celery.messaging": _COMPAT3.format("send tasks with apply_async"),
    "celery.registry": _COMPAT3.format("read app.tasks"),
    "celery.app.AppPickler": "apps are not pickled (JSON only): build the app in each process",
    "celery.app.bugreport": "not supported: report spinach_compat.__version__",
    "celery.app.disable_trace": "app tracing (CELERY_TRACE_APP) is not supported",
    "celery.app.enable_trace": "app tracing (CELERY_TRACE_APP) is not supported",
    "celery.app.pop_current_task": _INTERNAL.format("worker", "the worker keeps the task stack"),
    "celery.app.push_current_task": _INTERNAL.format("worker", "the worker keeps the task stack"),
    "celery.app.log.Logging": (
        "the app's Logging object is not supported: configure logging "
        "with -l/-f or a setup_logging receiver"
    ),
    # -- beat, bootsteps, worker -----------------------------------------------------------
    "celery.beat.BeatPidbox": _NO_BEAT,
    "celery.bootsteps.Step": _STEPS,
    "celery.bootsteps.StartStopStep": _STEPS,
    "celery.bootsteps.ConsumerStep": _STEPS + " (consume with kombu there)",
    "celery.bootsteps.Blueprint": _STEPS,
    "celery.worker.WorkController": (
        "Celery's worker is not embedded: run spinach-compat -A "
        "proj worker, or app.start_worker() in tests"
    ),
    "celery.worker.request.Request": (
        "the worker runs tasks without Celery's Request objects, so a custom Task.Request is "
        "never called: move on_failure/on_timeout hooks to Task.on_failure (it sees "
        "TimeLimitExceeded) or a task_failure receiver"
    ),
    # -- command line, concurrency, contrib, platforms --------------------------------------
    "celery.bin.celery.UNABLE_TO_LOAD_APP_APP_MISSING": _CLICK,
    "celery.bin.celery.UNABLE_TO_LOAD_APP_ERROR_OCCURRED": _CLICK,
    "celery.bin.celery.UNABLE_TO_LOAD_APP_MODULE_NOT_FOUND": _CLICK,
    "celery.bin.celery.WRONG_APP_OPTION_USAGE_MESSAGE": _CLICK,
    "celery.bin.celery.previous_show_implementation": _CLICK,
    "celery.bin.celery.report": _CLICK,
    "celery.exceptions.CeleryCommandException": _CLICK,
    "celery.concurrency": "pool implementations are not pluggable: " + _POOLS,
    "celery.contrib.testing.app.UnitLogging": (
        "the app's Logging object is not supported, so neither is its test subclass: "
        "TestApp leaves logging to pytest; configure it with a setup_logging receiver"
    ),
    **{
        "celery.contrib.testing.mocks." + name: (
            "Celery's task message mocks feed its worker's Request and strategies, which "
            "the facade has not: test a task by calling it, with apply(), or with a worker "
            "(start_worker); " + _GUIDE + "testing"
        )
        for name in ("TaskMessage", "TaskMessage1", "task_message_from_sig")
    },
    "celery.platforms.DaemonContext": _DAEMON,
    "celery.platforms.detached": _DAEMON,
    "celery.platforms.close_open_fds": _DAEMON,
    "celery.platforms.fd_by_path": _DAEMON,
    "celery.platforms.initgroups": _DAEMON,
    "celery.platforms.maybe_drop_privileges": _DAEMON,
    "celery.platforms.parse_gid": _DAEMON,
    "celery.platforms.parse_uid": _DAEMON,
    "celery.platforms.setgid": _DAEMON,
    "celery.platforms.setgroups": _DAEMON,
    "celery.platforms.setuid": _DAEMON,
    "celery.platforms.Pidfile": "pid files are the worker's --pidfile option (a lock, as Celery's)",
    "celery.platforms.create_pidlock": "use the worker's --pidfile option (a lock, as Celery's)",
    "celery.platforms.ignore_errno": "not supported: catch OSError and test its errno",
    "celery.platforms.set_process_title": "process titles are not set: use setproctitle",
    "celery.platforms.set_mp_process_title": "process titles are not set: use setproctitle",
    "celery.platforms.signals": (
        "Celery's signal-handler registry is not supported: the worker "
        "installs its SIGTERM/SIGINT handlers; use the signal module "
        "for others"
    ),
    "celery.signals.eventlet_pool_apply": "eventlet pools are not supported: " + _POOLS,
    "celery.signals.eventlet_pool_postshutdown": "eventlet pools are not supported: " + _POOLS,
    "celery.signals.eventlet_pool_preshutdown": "eventlet pools are not supported: " + _POOLS,
    "celery.signals.eventlet_pool_started": "eventlet pools are not supported: " + _POOLS,
    # -- utils -------------------------------------------------------------------------------
    "celery.utils.worker_direct": (
        "workers have no direct queues: route the task to a queue the worker consumes (-Q)"
    ),
    "celery.utils.nodenames.worker_direct": (
        "workers have no direct queues: route the task to a queue the worker consumes (-Q)"
    ),
    "celery.utils.functional.head_from_fun": _INTERNAL.format(
        "argument checks", "use inspect.signature"
    ),
    "celery.utils.functional.regen": "not supported: use list(iterable)",
    "celery.utils.threads.Local": "not supported: use threading.local",
    "celery.utils.threads.LocalManager": "not supported: use threading.local",
    "celery.utils.threads.bound_open_broker_sockets": _KOMBU,
    "celery.utils.time.timezone": "not supported: use app.timezone, zoneinfo or datetime.timezone",
    "celery.utils.time.remaining": _INTERNAL.format("beat scheduler", "subtract aware datetimes"),
    "celery.utils.time.ffwd": _INTERNAL.format("beat scheduler", "use dateutil's relativedelta"),
}

_APP, _TASK, _SIG = "celery.app.base.Celery.", "celery.app.task.Task.", "celery.canvas.Signature."
_RESULT, _GROUP = "celery.result.AsyncResult.", "celery.result.GroupResult."
_CONTROL, _INSPECT = "celery.app.control.Control.", "celery.app.control.Inspect."


def _each(prefix: str, names: str, reason: str) -> dict[str, str]:
    return {prefix + name: reason for name in names.split()}


# Attributes of Celery's classes: each facade class refuses those it lacks with
# refuse_missing(); implementing one means removing its entry.
REFUSED.update(
    {
        **_each(
            _APP,
            "Beat Worker WorkController start worker_main",
            "Celery's worker and beat are not embedded: run spinach-compat -A proj worker, or "
            "app.start_worker() in tests",
        ),
        _APP + "Pickler": "apps are not pickled (JSON only): build the app in each process",
        _APP + "add_defaults": "not supported: pass the settings to config_from_object",
        _APP + "config_from_cmdline": "not supported: pass settings with config_from_object",
        _APP + "prepare_config": _INTERNAL.format("app", "use config_from_object"),
        **_each(
            _APP,
            "amqp default_producer pool producer_or_acquire producer_pool",
            _KOMBU,
        ),
        **_each(
            _APP,
            "amqp_cls backend_cls control_cls events_cls loader_cls log_cls registry_cls",
            _APP_CLASS,
        ),
        _APP + "annotations": (
            "task_annotations are not supported: set the options on the task "
            "(decorator or class attributes)"
        ),
        _APP + "bugreport": "not supported: report spinach_compat.__version__",
        _APP + "builtin_fixups": (
            "fixups are not pluggable: Django works through "
            "config_from_object('django.conf:settings')"
        ),
        _APP + "create_task_cls": _INTERNAL.format("app", "subclass spinach_compat.Task"),
        _APP + "subclass_with_self": _INTERNAL.format("app", "subclass the class directly"),
        _APP + "either": _INTERNAL.format("app", "read app.conf"),
        _APP + "log": (
            "the app's Logging object is not supported: configure logging with -l/-f or "
            "a setup_logging receiver"
        ),
        **_each(
            _APP,
            "oid thread_oid",
            "node ids of Celery's rpc:// backend are not used "
            "(no rpc:// backend): " + _GUIDE + "brokers-and-result-backends",
        ),
        _APP + "select_queues": "not supported: give the worker its queues with -Q",
        _APP + "setup_security": (
            "message signing (the auth serializer) is not supported: protect the broker "
            "with TLS (rediss://) and Redis ACLs instead"
        ),
        _APP + "type_checker": _INTERNAL.format("argument checks", "the facade checks arguments"),
        _APP + "user_options": "custom command-line options are not supported: use settings",
        # -- Task ----------------------------------------------------------------------------------
        **_each(
            _TASK,
            "Strategy start_strategy",
            "Celery's worker execution strategy is not pluggable: the worker runs every task "
            "the same way; remove the override",
        ),
        _TASK + "retry_on_worker_lost": (
            "a job whose worker dies is always run again while it has retries left, not "
            "retried as retry() would: remove the option; " + _GUIDE + "task-options"
        ),
        _TASK + "add_around": _INTERNAL.format("tracer", "override __call__"),
        _TASK + "annotate": "task_annotations are not supported: set the options on the task",
        _TASK + "from_config": (
            "an internal of Celery's Task, not read here: the options left unset follow the "
            "settings of spinach_compat.app.task.FROM_CONFIG; set other options on the task"
        ),
        _TASK + "subtask_from_request": "not supported: use signature_from_request",
        # -- Signature -----------------------------------------------------------------------------
        **_each(
            _SIG,
            "append_to_list_option extend_list_option flatten_links election",
            _INTERNAL.format("canvas", "set options with set()"),
        ),
        # -- AsyncResult, GroupResult --------------------------------------------------------------
        _RESULT + "TimeoutError": "not supported: use spinach_compat.exceptions.TimeoutError",
        _RESULT + "then": _PROMISE,
        _RESULT + "throw": _INTERNAL.format("result promises", "use get()"),
        **_each(
            _GROUP,
            "add discard remove update clear",
            "a GroupResult's results are fixed: build a new GroupResult",
        ),
        _GROUP + "then": _PROMISE,
        # -- Control, Inspect ----------------------------------------------------------------------
        _CONTROL + "pool_restart": "not supported: restart the workers to load new code",
        _CONTROL + "election": _INTERNAL.format("remote control", "no replacement"),
    }
)

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
    raise UnsupportedFeature(_message(name))


def module_getattr(facade_module: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` refusing the module's listed names (others: AttributeError).

    A refused name read as ``module.name`` raises ``RefusedAttributeError``, so that
    ``hasattr(module, name)`` and ``getattr(module, name, default)`` (third-party feature
    detection) see it absent; ``from module import name`` raises ``UnsupportedFeature``
    itself, because Python turns an ``AttributeError`` there into an ``ImportError`` that
    drops the reason.
    """
    prefix = celery_name(facade_module) + "."

    def __getattr__(name: str) -> Any:
        key = prefix + name
        if key in REFUSED:
            if _importing_from(sys._getframe(1)):
                refuse(key)
            raise RefusedAttributeError(_message(key))
        raise AttributeError(f"module {facade_module!r} has no attribute {name!r}")

    return __getattr__


def _importing_from(frame: Any) -> bool:
    """Whether ``frame`` is running a ``from module import name`` (if unsure: True, the
    loud answer)."""
    try:
        return dis.opname[frame.f_code.co_code[frame.f_lasti]] in _IMPORTS
    except (AttributeError, IndexError):
        return True


#: The opcodes reading a module attribute for an import statement.
_IMPORTS = frozenset({"IMPORT_FROM", "IMPORT_STAR", "IMPORT_NAME"})


class RefusedAttributeError(UnsupportedFeature, AttributeError):
    """A refused class attribute was read: ``UnsupportedFeature`` with the reason, and an
    ``AttributeError`` so that ``hasattr`` and ``getattr(obj, name, default)`` see it absent."""


class RefusedAttribute(property):
    """A class attribute that raises ``RefusedAttributeError`` when read or set; ``name`` is
    its key."""

    name: str


def _message(name: str) -> str:
    return f"{name} is not supported by spinach_compat: {REFUSED[name]}"


def refused_attribute(name: str) -> property:
    """A class attribute that raises ``RefusedAttributeError`` for ``name`` when read or set."""

    def read(_self: Any) -> NoReturn:
        raise RefusedAttributeError(_message(name))

    def write(_self: Any, _value: Any) -> NoReturn:
        raise RefusedAttributeError(_message(name))

    prop = RefusedAttribute(
        read, write, doc=f"Refused: {name} (see spinach_compat.surface.REFUSED)."
    )
    prop.name = name
    return prop


def class_refusals(celery_class: str) -> dict[str, str]:
    """``{attribute: REFUSED key}`` of the refused attributes of Celery's class."""
    prefix = celery_class + "."
    return {
        key[len(prefix) :]: key
        for key in REFUSED
        if key.startswith(prefix) and "." not in key[len(prefix) :]
    }


def refuse_missing(cls: type, celery_class: str) -> type:
    """Give ``cls`` a ``refused_attribute`` for each refused attribute of Celery's class
    ``celery_class`` (``celery.app.task.Task``) that it does not define; ``cls``."""
    for attr, key in class_refusals(celery_class).items():
        if not any(attr in vars(klass) for klass in cls.__mro__):
            setattr(cls, attr, refused_attribute(key))
    return cls


def refuse_overrides(cls: type, base: type, names: Iterable[str], celery_class: str,
                     what: str) -> None:  # fmt: skip
    """Raise ``UnsupportedFeature`` if a class of ``cls``'s MRO but ``base`` and its own
    bases (a subclass, a mixin) sets one of ``names``, refused attributes of
    ``celery_class`` that Celery's machinery reads and the facade's never does: the setting
    would be silently ignored. ``what`` names the declaration (``task 'proj.add'``)."""
    for klass in cls.__mro__:
        if klass in base.__mro__:
            continue
        for name in names:
            if name in vars(klass):
                key = f"{celery_class}.{name}"
                raise UnsupportedFeature(f"{what} sets {name}: {_message(key)}")


def refused_init(name: str) -> Callable[..., NoReturn]:
    """An ``__init__`` refusing ``name``: the class imports and subclasses, never runs."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        refuse(name)

    return __init__


def refused_module(facade_module: str) -> str | None:
    """The REFUSED key refusing ``spinach_compat.x.y`` as a module (itself or a parent)."""
    parts = celery_name(facade_module).split(".")
    for end in range(len(parts), 1, -1):
        key = ".".join(parts[:end])
        if key in REFUSED and key.startswith(CELERY + "."):
            return key
    return None


class _RefusedModules(importlib.abc.MetaPathFinder):
    """Last on ``sys.meta_path``: a missing facade module Celery has and we refuse raises."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None) -> None:
        if fullname.startswith(FACADE + "."):
            key = refused_module(fullname)
            if key is not None:
                refuse(key)
        return None


if not any(isinstance(finder, _RefusedModules) for finder in sys.meta_path):
    sys.meta_path.append(_RefusedModules())
