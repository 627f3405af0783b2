"""``spinach-compat check PATH``: which Celery APIs a codebase uses, and how they migrate.

The checker reads a codebase's Python files with ``ast`` (it never imports or runs them),
plus its deployment files (Procfile, shell scripts, Dockerfiles, YAML, ...) for ``celery``
command lines. It lists each Celery API use with its file and line, marked ``supported``,
``different`` (works, with a difference to know) or ``unsupported`` (with the workaround),
and the section of ``migration_guide/`` about it; then a summary. ``--json`` prints the
same for tools. Exit status: 1 when something unsupported is used, 0 otherwise, 2 for a
usage error.

``RULES`` below is the one table of support statuses; the tests check that every section
it names exists in the guide and that it agrees with what the facade refuses at run time.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SUPPORTED, DIFFERENT, UNSUPPORTED = "supported", "different", "unsupported"
EXIT_OK, EXIT_UNSUPPORTED, EXIT_USAGE = 0, 1, 2
GUIDE = "migration_guide/"
_UNKNOWN = object()  #: a value the checker cannot see as a literal


@dataclass(frozen=True)
class Rule:
    """How one Celery API migrates; ``accepts`` tells a supported value apart (if any)."""

    status: str
    section: str
    note: str
    accepts: Callable[[Any], bool] | None = None


def _in(*values: Any) -> Callable[[Any], bool]:
    return lambda value: value in values


def _is_none(value: Any) -> bool:
    return value is None


def _scheme_in(*schemes: str) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and value.split(":", 1)[0] in schemes


_NOT_SIGNED = lambda value: value != "auth"  # noqa: E731  (message signing is refused)
_BROKERS = _scheme_in("memory", "redis", "rediss", "unix", "redis+socket")
_BACKENDS = _scheme_in("memory", "cache+memory", "redis", "rediss", "unix", "disabled")

F = "features.md"
S_IMPORTS = "README.md#step-1-swap-the-imports"
S_BROKERS = f"{F}#brokers-and-result-backends"
S_SETTINGS = f"{F}#settings"
S_TASKS = f"{F}#task-options"
S_CALLING = f"{F}#calling-tasks"
S_RETRIES = f"{F}#retries"
S_RESULTS = f"{F}#results"
S_CANVAS = f"{F}#canvas"
S_BEAT = f"{F}#periodic-tasks-beat"
S_LIMITS = f"{F}#time-limits"
S_SIGNALS = f"{F}#signals"
S_CLI = f"{F}#worker-command-line"
S_CONTROL = f"{F}#control-and-inspection"
S_SERIAL = f"{F}#serialization"
S_RATES = f"{F}#rate-limits-and-priorities"
S_POOLS = f"{F}#worker-pools"
S_GUARANTEES = "README.md#delivery-guarantees-and-timing"
S_INTEROP = f"{F}#interop-with-celery"

_COMPAT_MODULES = (
    "celery celery.app celery.app.task celery.canvas celery.exceptions celery.result "
    "celery.schedules celery.signals celery.states celery.utils.log"
)
DEFAULT_SCHEDULERS = ("celery.beat:PersistentScheduler", "celery.beat.PersistentScheduler")


def _each(kind: str, rule: Rule, names: str) -> dict[str, Rule]:
    """The same rule for each of the space-separated ``names`` of ``kind``."""
    return {f"{kind}:{name}": rule for name in names.split()}


_S = lambda section, note="", accepts=None: Rule(SUPPORTED, section, note, accepts)  # noqa: E731
_D = lambda section, note, accepts=None: Rule(DIFFERENT, section, note, accepts)  # noqa: E731
_U = lambda section, note, accepts=None: Rule(UNSUPPORTED, section, note, accepts)  # noqa: E731
_NO_EFFECT = "accepted, no effect"
_NOT_SENT = "defined so receivers connect, but never sent"

#: The one table: ``kind:name`` -> Rule. ``kind:*`` is the fallback of a kind.
RULES: dict[str, Rule] = {
    # -- modules -----------------------------------------------------------------------
    **{
        f"module:{m}": _S(S_IMPORTS, f"import it from spinach_compat{m[6:]}")
        for m in _COMPAT_MODULES.split()
    },
    "module:*": _U(S_IMPORTS, "no such module in spinach_compat"),
    # -- names used from those modules ---------------------------------------------------
    "name:Celery": _S(S_IMPORTS, "one native Engine per app; namespace = main name"),
    "name:shared_task": _S(S_TASKS, "registered with every app"),
    "decorator:task": _S(S_TASKS, "@app.task"),
    "name:crontab": _D(S_BEAT, "scheduled ahead by the workers' crontab ticker; no beat"),
    "name:solar": _U(S_BEAT, "solar schedules are refused; use a fixed period"),
    "name:group": _S(S_CANVAS, "members sent in one round trip; a GroupResult"),
    "name:chain": _S(S_CANVAS, "each task linked to the next; the last task's result"),
    "name:chord": _S(S_CANVAS, "a counter in the result backend; needs a result backend"),
    "name:chunks": _U(S_CANVAS, "chunks is refused; split the work yourself"),
    "name:xmap": _U(S_CANVAS, "xmap is refused"),
    "name:xstarmap": _U(S_CANVAS, "xstarmap is refused"),
    "name:GroupResult": _S(S_RESULTS, "what group().apply_async() returns"),
    "canvas:|": _S(S_CANVAS, "a chain (group | signature: a chord)"),
    # -- settings (Celery(...) keywords, app.conf, config_from_object) --------------------
    "setting:broker_url": _S(S_BROKERS, "memory:// or redis:// only", _BROKERS),
    "setting:spinach_legacy_tasks": _S(S_INTEROP, "sent as Celery messages to Celery workers"),
    "setting:task_protocol": _U(S_INTEROP, "the bridge dead-letters protocol 1 messages", _in(2)),
    "setting:result_backend": _S(S_BROKERS, "memory:// or redis:// only", _BACKENDS),
    "setting:result_expires": _S(S_RESULTS),
    "setting:result_serializer": _U(S_SERIAL, "kombu's serializers; auth is refused", _NOT_SIGNED),
    "setting:accept_content": _S(S_SERIAL, "gates what workers decode (None: JSON only)"),
    "setting:result_accept_content": _S(S_SERIAL, "gates what results are decoded"),
    "setting:task_serializer": _U(S_SERIAL, "kombu's serializers; auth is refused", _NOT_SIGNED),
    "setting:result_extended": _S(S_RESULTS, "name, args, kwargs, worker, retries, queue"),
    "setting:task_compression": _S(S_SERIAL, "kombu's compressions"),
    "setting:result_compression": _U(S_SERIAL, "compressed results are refused", _is_none),
    "setting:task_default_rate_limit": _S(S_RATES, "a token bucket per worker process"),
    "setting:task_annotations": _U(S_TASKS, "annotations are refused", _is_none),
    "setting:task_default_priority": _S(S_RATES, "kombu's Redis priority bands"),
    "setting:beat_scheduler": _U(S_BEAT, "only the default scheduler", _in(*DEFAULT_SCHEDULERS)),
    "setting:beat_schedule": _D(S_BEAT, "fired by the workers, no beat process"),
    "setting:worker_pool": _U(S_POOLS, "tasks run in threads", _in("threads", "solo")),
    **_each(
        "setting",
        _S(S_SETTINGS),
        "enable_utc timezone task_always_eager task_eager_propagates task_store_eager_result "
        "task_default_queue task_ignore_result task_store_errors_even_if_ignored "
        "task_track_started task_publish_retry task_publish_retry_policy "
        "task_create_missing_queues imports include worker_concurrency "
        "worker_hijack_root_logger spinach_namespace",
    ),
    "setting:task_routes": _D(
        S_SETTINGS, "a route's queue and priority are used; 'legacy': True sends to Celery workers"
    ),
    "setting:task_queues": _D(S_SETTINGS, "only the queue names are used"),
    "setting:task_time_limit": _D(S_LIMITS, "enforced in threads"),
    "setting:task_soft_time_limit": _D(S_LIMITS, "enforced in threads"),
    "setting:task_acks_late": _D(S_GUARANTEES, "tasks are always run again after a crash"),
    "setting:task_reject_on_worker_lost": _D(S_GUARANTEES, "tasks are always run again"),
    "setting:task_retry_on_worker_lost": _U(S_GUARANTEES, "always run again", _in(False, None)),
    **_each(
        "setting",
        _U(S_TASKS, "only True: failed or timed-out tasks are not run again", _in(True, None)),
        "task_acks_on_failure_or_timeout task_acks_on_failure task_acks_on_timeout",
    ),
    **_each(
        "setting",
        _D(S_SETTINGS, _NO_EFFECT),
        "worker_prefetch_multiplier result_backend_transport_options task_default_exchange "
        "task_default_routing_key beat_max_loop_interval worker_send_task_events "
        "task_send_sent_event",
    ),
    **_each(
        "setting",
        _D(S_SETTINGS, "read when a worker starts (retrying an unreachable broker) only"),
        "broker_connection_retry broker_connection_retry_on_startup broker_connection_max_retries "
        "broker_connection_timeout",
    ),
    "setting:broker_transport_options": _D(S_RATES, "only priority_steps is read"),
    "setting:*": _D(S_SETTINGS, "not read by spinach_compat"),
    # -- task options (@app.task / @shared_task / Task subclasses) -------------------------
    **_each(
        "task",
        _S(S_TASKS),
        "name bind base max_retries default_retry_delay ignore_result track_started expires "
        "queue throws autoretry_for typing dont_autoretry_for retry_kwargs retry_backoff "
        "retry_backoff_max retry_jitter store_errors_even_if_ignored",
    ),
    "task:serializer": _U(S_SERIAL, "kombu's serializers; auth is refused", _NOT_SIGNED),
    "task:acks_late": _D(S_GUARANTEES, "tasks are always run again after a crash"),
    "task:time_limit": _D(S_LIMITS, "enforced in threads"),
    "task:soft_time_limit": _D(S_LIMITS, "enforced in threads"),
    "task:rate_limit": _S(S_RATES, "a token bucket per worker process"),
    "task:priority": _S(S_RATES, "kombu's Redis priority bands"),
    "task:reject_on_worker_lost": _U(S_GUARANTEES, "always run again", _is_none),
    "task:compression": _S(S_SERIAL, "kombu's compressions"),
    "task:pydantic": _U(S_TASKS, "pydantic conversion is refused", _is_none),
    "task:shadow_name": _U(S_TASKS, "shadow names are refused", _is_none),
    "task:retry_on_worker_lost": _U(S_GUARANTEES, "always run again", _is_none),
    **_each(
        "task",
        _U(S_TASKS, "only True: failed or timed-out tasks are not run again", _in(True, None)),
        "acks_on_failure_or_timeout acks_on_failure acks_on_timeout",
    ),
    "task:resultrepr_maxsize": _U(S_TASKS, "the log line is not configurable", _in(1024)),
    **_each(
        "task",
        _U(S_TASKS, "read by Celery's worker only: refused"),
        "Strategy start_strategy from_config annotate Request",
    ),
    **_each("task", _D(S_TASKS, "accepted, no effect"), "send_events trail"),
    "task:*": _D(S_TASKS, "set as a task attribute, no effect"),
    # -- apply_async options -----------------------------------------------------------
    **_each(
        "call",
        _S(S_CALLING),
        "args kwargs task_id countdown eta queue headers expires ignore_result retry "
        "retry_policy routing_key",
    ),
    "call:time_limit": _D(S_LIMITS, "enforced in threads"),
    "call:soft_time_limit": _D(S_LIMITS, "enforced in threads"),
    "call:serializer": _U(S_SERIAL, "kombu's serializers; auth is refused", _NOT_SIGNED),
    **_each(
        "call",
        _D(S_CALLING, _NO_EFFECT),
        "shadow add_to_parent exchange exchange_type declare delivery_mode mandatory group_id "
        "group_index reply_to retries result_cls root_id parent_id origin",
    ),
    "call:link": _S(S_CANVAS, "Celery's callbacks"),
    "call:link_error": _S(S_CANVAS, "Celery's errback calling rule"),
    "call:chord": _U(S_CANVAS, "chords are refused", _is_none),
    "call:chain": _U(S_CANVAS, "chains are refused", _is_none),
    "call:priority": _S(S_RATES, "kombu's Redis priority bands"),
    "call:producer": _U(S_CALLING, "custom producers are refused", _is_none),
    "call:connection": _U(S_CALLING, "custom connections are refused", _is_none),
    "call:*": _U(S_CALLING, "unknown apply_async options are refused"),
    # -- self.retry options ------------------------------------------------------------
    **_each(
        "retry",
        _S(S_RETRIES),
        "exc countdown eta max_retries throw args kwargs",
    ),
    "retry:*": _D(S_RETRIES, "ignored: the job is retried on its own queue"),
    # -- schedules, control ------------------------------------------------------------
    "schedule:period": _S(S_BEAT, "a fixed period"),
    "control:revoke(terminate)": _D(
        S_CONTROL, "stops the task's thread; a C call (sleep, socket read) first returns"
    ),
    # -- signals -----------------------------------------------------------------------
    **_each(
        "signal",
        _S(S_SIGNALS),
        "before_task_publish after_task_publish task_received task_prerun task_postrun "
        "task_success task_failure task_retry task_revoked task_unknown task_internal_error "
        "celeryd_init setup_logging after_setup_logger after_setup_task_logger import_modules "
        "worker_init celeryd_after_setup worker_ready worker_shutting_down "
        "worker_process_shutdown worker_shutdown",
    ),
    "signal:worker_process_init": _D(S_SIGNALS, "sent once: tasks run in threads"),
    **_each(
        "signal",
        _D(S_SIGNALS, _NOT_SENT),
        "task_rejected task_sent worker_before_create_process heartbeat_sent beat_init "
        "beat_embedded_init user_preload_options",
    ),
    "signal:*": _U(S_SIGNALS, "not defined by spinach_compat"),
    # -- command line ------------------------------------------------------------------
    "cli:worker": _S(S_CLI, "spinach-compat -A proj worker"),
    "cli:inspect": _S(S_CONTROL, "answered from the broker's bookkeeping"),
    "cli:purge": _S(S_CONTROL),
    "cli:beat": _D(S_BEAT, "no beat process: workers fire the schedule; remove it"),
    "cli:*": _U(S_CLI, "no such sub-command in spinach-compat"),
    **_each(
        "flag",
        _S(S_CLI),
        "-A --app -b --broker --result-backend --workdir -q --quiet -n --hostname -Q --queues "
        "-X --exclude-queues -c --concurrency -l --loglevel -f --logfile -I --include "
        "--pidfile --time-limit --soft-time-limit",
    ),
    "flag:--celery-queues": _S(S_INTEROP, "also consumes Celery's messages on these queues"),
    "flag:-B": _D(S_BEAT, "accepted: every worker fires the schedule"),
    "flag:--beat": _D(S_BEAT, "accepted: every worker fires the schedule"),
    **_each(
        "flag",
        _D(S_CLI, _NO_EFFECT),
        "-O --prefetch-multiplier --without-gossip --without-mingle --without-heartbeat "
        "--heartbeat-interval -s --schedule --schedule-filename",
    ),
    "flag:-P": _U(S_POOLS, "tasks run in threads: -P threads or solo", _in("threads", "solo")),
    "flag:--pool": _U(S_POOLS, "tasks run in threads: threads or solo", _in("threads", "solo")),
    **_each(
        "flag",
        _U(S_CLI, "refused by the worker command"),
        "--autoscale -D --detach --max-tasks-per-child --max-memory-per-child -E "
        "--task-events -S --statedb --scheduler --uid --gid",
    ),
    "flag:*": _U(S_CLI, "unknown to spinach-compat"),
}


def rule_for(key: str) -> Rule:
    """The rule of ``kind:name``, else the fallback of its kind."""
    return RULES.get(key) or RULES[key.split(":", 1)[0] + ":*"]


@dataclass
class Finding:
    """One use of a Celery API."""

    file: str
    line: int
    api: str
    status: str
    note: str
    section: str


@dataclass
class Report:
    """Every finding of a run, and the files it could not parse."""

    root: str
    findings: list[Finding] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    files: int = 0

    def add(self, file: str, line: int, key: str, value: Any = _UNKNOWN, label: str = "") -> None:
        """Record a use of ``key`` (``kind:name``), judged on its literal ``value``."""
        rule = rule_for(key)
        status, note = rule.status, rule.note
        if rule.accepts is not None and value is not _UNKNOWN:
            status = SUPPORTED if _accepts(rule, value) else UNSUPPORTED
        elif rule.accepts is not None and status == UNSUPPORTED:
            status, note = DIFFERENT, f"{note} (value not a literal: check it)"
        api = label or key.split(":", 1)[1]
        if value is not _UNKNOWN:
            api = f"{api}={value!r}"
        self.findings.append(Finding(file, line, api, status, note, GUIDE + rule.section))

    @property
    def counts(self) -> Counter:
        return Counter(finding.status for finding in self.findings)


def _accepts(rule: Rule, value: Any) -> bool:
    try:
        return bool(rule.accepts(value))  # type: ignore[misc]
    except Exception:
        return False


# -- Python files --------------------------------------------------------------------------

CELERY_NAME = re.compile(r"^celery(\.|$)")

#: Names reported where they are imported (the others where they are called).
REPORTED_AT_IMPORT = frozenset({"GroupResult"})


class Visitor(ast.NodeVisitor):
    """Finds the Celery API uses of one module; knows the names it imported from celery."""

    def __init__(self, report: Report, file: str, namespaces: set[str]):
        self.report, self.file, self.namespaces = report, file, namespaces
        self.names: dict[str, str] = {}  # local name -> qualified celery name

    def add(self, node: ast.AST, key: str, value: Any = _UNKNOWN, label: str = "") -> None:
        self.report.add(self.file, getattr(node, "lineno", 0), key, value, label)

    def qualified(self, node: ast.AST) -> str | None:
        """``celery.x.y`` of a name or attribute chain rooted at a celery import."""
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if CELERY_NAME.match(alias.name):
                self.add(node, f"module:{alias.name}", label=f"import {alias.name}")
                local = alias.asname or alias.name.split(".")[0]
                self.names[local] = alias.name if alias.asname else local

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or not CELERY_NAME.match(module):
            return
        self.add(node, f"module:{module}", label=f"from {module} import ...")
        for alias in node.names:
            self.names[alias.asname or alias.name] = f"{module}.{alias.name}"
            if alias.name in REPORTED_AT_IMPORT:
                self.add(node, f"name:{alias.name}", label=f"import {alias.name}")

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit_decorator(decorator)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_decorator(self, node: ast.expr) -> None:
        """``@app.task(...)``, ``@shared_task(...)`` and ``@<signal>.connect``."""
        target = node.func if isinstance(node, ast.Call) else node
        name = self.qualified(target) or ""
        if name.startswith("celery.signals.") and not isinstance(node, ast.Call):
            self.add(node, f"signal:{name.split('.')[2]}")
        shared = name.endswith(".shared_task")
        if not shared and not (isinstance(target, ast.Attribute) and target.attr == "task"):
            return
        self.add(node, "name:shared_task" if shared else "decorator:task")
        for keyword in node.keywords if isinstance(node, ast.Call) else ():
            if keyword.arg:
                self.add(keyword, f"task:{keyword.arg}", literal(keyword.value))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        if any((self.qualified(b) or "").endswith(".Task") for b in node.bases):
            for statement in node.body:
                for target, value in _assignments(statement):
                    if target:
                        self.add(statement, f"task:{target}", literal(value))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualified(node.func) or ""
        short = name.rsplit(".", 1)[-1]
        if name and short == "Celery":
            self.add(node, "name:Celery", label="Celery(...)")
            self.celery_kwargs(node)
        elif name and f"name:{short}" in RULES and short != "shared_task":
            self.add(node, f"name:{short}", label=f"{short}(...)")
        elif name.startswith("celery.signals.") and short == "connect":
            self.add(node, f"signal:{name.split('.')[2]}")
        elif isinstance(node.func, ast.Attribute):
            self.method_call(node, node.func)
        self.generic_visit(node)

    def celery_kwargs(self, node: ast.Call) -> None:
        aliases = {"broker": "broker_url", "backend": "result_backend"}
        for keyword in node.keywords:
            if keyword.arg and keyword.arg not in ("set_as_current", "main"):
                key = aliases.get(keyword.arg, keyword.arg)
                self.add(keyword, f"setting:{key}", literal(keyword.value))

    def method_call(self, node: ast.Call, func: ast.Attribute) -> None:
        """``.apply_async``, ``self.retry``, ``conf.update``, ``config_from_object``, ..."""
        keywords = [k for k in node.keywords if k.arg]
        if func.attr == "apply_async":
            for keyword in keywords:
                self.add(keyword, f"call:{keyword.arg}", literal(keyword.value))
        elif func.attr == "retry" and _is_name(func.value, "self"):
            self.add(node, "retry:exc", label="self.retry(...)")
            for keyword in (k for k in keywords if k.arg != "exc"):
                self.add(keyword, f"retry:{keyword.arg}", literal(keyword.value))
        elif func.attr == "update" and _attr_name(func.value) == "conf":
            self.settings(node)
        elif func.attr == "config_from_object":
            self.config_from_object(node)
        elif func.attr == "revoke" and _attr_name(func.value) == "control":
            for keyword in (k for k in keywords if k.arg == "terminate"):
                self.add(keyword, "control:revoke(terminate)", literal(keyword.value))

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
        self.add(node, f"setting:{key}", literal(value) if key != "beat_schedule" else _UNKNOWN)
        if key == "beat_schedule" and isinstance(value, ast.Dict):
            self.beat_entries(value)

    def beat_entries(self, schedule: ast.Dict) -> None:
        """Entries with a fixed period; crontab/solar calls are reported where called."""
        for entry in schedule.values:
            if not isinstance(entry, ast.Dict):
                continue
            for key, value in zip(entry.keys, entry.values, strict=True):
                if _is_period(key, value):
                    self.add(value, "schedule:period", label="beat entry schedule")

    def config_from_object(self, node: ast.Call) -> None:
        for keyword in node.keywords:
            if keyword.arg == "namespace" and isinstance(keyword.value, ast.Constant):
                self.namespaces.add(str(keyword.value.value))

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self.assignment(node, target, node.value)
        self.generic_visit(node)

    def assignment(self, node: ast.AST, target: ast.expr, value: ast.expr) -> None:
        """``app.conf.key = v``, ``app.conf['key'] = v`` and ``CELERY_KEY = v`` settings."""
        if isinstance(target, ast.Attribute) and _attr_name(target.value) == "conf":
            self.setting(node, target.attr, value)
        elif isinstance(target, ast.Subscript) and _attr_name(target.value) == "conf":
            if isinstance(target.slice, ast.Constant) and isinstance(target.slice.value, str):
                self.setting(node, target.slice.value, value)
        elif isinstance(target, ast.Name):
            key = _namespaced(target.id, self.namespaces)
            if key:
                self.setting(node, key, value)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if (
            isinstance(node.op, ast.BitOr)
            and _is_signature(node.left)
            and _is_signature(node.right)
        ):
            self.add(node, "canvas:|", label="signature | signature")
        self.generic_visit(node)


def _assignments(statement: ast.stmt) -> Iterator[tuple[str, ast.expr]]:
    if isinstance(statement, ast.Assign):
        for target in statement.targets:
            if isinstance(target, ast.Name):
                yield target.id, statement.value
    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
        target = statement.target
        yield (target.id if isinstance(target, ast.Name) else ""), statement.value


def _is_period(key: ast.expr | None, value: ast.expr) -> bool:
    """A beat entry's ``schedule`` that is not a crontab/solar call (reported as calls)."""
    if not (isinstance(key, ast.Constant) and key.value == "schedule"):
        return False
    return not isinstance(value, ast.Call) or f"name:{_callee(value)}" not in RULES


def _namespaced(name: str, namespaces: set[str]) -> str | None:
    for namespace in namespaces:
        prefix = f"{namespace}_"
        if name.startswith(prefix) and name.isupper() and len(name) > len(prefix):
            return name[len(prefix) :].lower()
    return None


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _attr_name(node: ast.AST) -> str | None:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)


def _callee(node: ast.Call) -> str:
    return _attr_name(node.func) or ""


def _is_signature(node: ast.AST) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _is_signature(node.left) and _is_signature(node.right)
    return isinstance(node, ast.Call) and _callee(node) in ("s", "si", "signature")


def literal(node: ast.AST) -> Any:
    """The value of a literal expression, else ``_UNKNOWN``."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNKNOWN


# -- deployment files: celery command lines ----------------------------------------------

#: Files whose lines may hold a ``celery ... worker`` command.
COMMAND_FILES = re.compile(
    r"(^Procfile|^Dockerfile|^Makefile|\.(sh|bash|ya?ml|ini|cfg|conf|service|toml|env)$)"
)
COMMAND = re.compile(r"(^|[\s\"'=\[,])(celery|spinach-compat)\s+(?P<rest>.*)")
SUBCOMMANDS = frozenset({
    "worker", "beat", "inspect", "purge", "multi", "flower", "events", "control", "shell",
    "call", "result", "status", "report", "migrate", "graph", "upgrade", "amqp", "list",
    "logtool",
})  # fmt: skip
VALUE_FLAGS = frozenset({"-P", "--pool"})


def scan_command_line(report: Report, file: str, number: int, line: str) -> None:
    """Report the sub-command and flags of a ``celery`` command line."""
    match = COMMAND.search(line)
    if match is None:
        return
    try:
        words = shlex.split(match.group("rest"), comments=True)
    except ValueError:
        words = match.group("rest").split()
    command = next((w for w in words if w in SUBCOMMANDS), None)
    if command is None:
        return
    report.add(file, number, f"cli:{command}", label=f"celery {command}")
    for index, word in enumerate(words):
        if not word.startswith("-") or word == "-":
            continue
        flag, _, value = word.partition("=")
        if flag.startswith("-") and not flag.startswith("--") and len(flag) > 2:
            flag, value = flag[:2], flag[2:]  # -Pprefork, -c4
        if flag in VALUE_FLAGS:
            value = value or (words[index + 1] if index + 1 < len(words) else "")
            report.add(file, number, f"flag:{flag}", value)
        else:
            report.add(file, number, f"flag:{flag}", label=flag)


# -- walking a codebase --------------------------------------------------------------------

SKIPPED_DIRS = frozenset({
    ".git", ".hg", ".venv", "venv", "env", "node_modules", "__pycache__", "site-packages",
    "build", "dist", ".tox", ".nox", ".mypy_cache", ".ruff_cache", ".pytest_cache",
})  # fmt: skip


def iter_files(root: Path) -> Iterator[Path]:
    """Every file under ``root`` (or ``root`` itself), skipping virtualenvs and caches."""
    if root.is_file():
        yield root
        return
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            yield Path(directory, name)


def check_path(root: str | Path) -> Report:
    """Check every Python and deployment file under ``root``; never imports them."""
    root = Path(root)
    report = Report(str(root))
    trees: list[tuple[str, ast.Module]] = []
    for path in iter_files(root):
        shown = str(path.relative_to(root)) if path != root else path.name
        if path.suffix == ".py":
            tree = _parse(report, path, shown)
            if tree is not None:
                trees.append((shown, tree))
        elif COMMAND_FILES.search(path.name):
            _scan_text(report, path, shown)
    namespaces = {ns for _, tree in trees for ns in _namespaces(tree)}
    for shown, tree in trees:
        Visitor(report, shown, namespaces).visit(tree)
    report.files = len(trees)
    report.findings.sort(key=lambda f: (f.file, f.line))
    return report


def _parse(report: Report, path: Path, shown: str) -> ast.Module | None:
    try:
        return ast.parse(path.read_bytes(), filename=shown)
    except (SyntaxError, ValueError, OSError) as exc:
        report.skipped.append(f"{shown}: {exc}")
        return None


def _scan_text(report: Report, path: Path, shown: str) -> None:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        report.skipped.append(f"{shown}: {exc}")
        return
    for number, line in enumerate(text.splitlines(), 1):
        scan_command_line(report, shown, number, line)


def _namespaces(tree: ast.Module) -> Iterator[str]:
    """Namespaces given to ``config_from_object`` as literals (e.g. 'CELERY')."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _attr_name(node.func) == "config_from_object":
            for keyword in node.keywords:
                if keyword.arg == "namespace" and isinstance(keyword.value, ast.Constant):
                    yield str(keyword.value.value)


# -- output --------------------------------------------------------------------------------


def format_text(report: Report) -> str:
    """One line per finding, then the summary."""
    lines = [
        f"{f.file}:{f.line}: {f.status:<11} {f.api}"
        + (f" ({f.note})" if f.note else "")
        + f" -> {f.section}"
        for f in report.findings
    ]
    lines += [f"skipped (cannot parse): {s}" for s in report.skipped]
    counts = report.counts
    lines.append(
        f"\n{len(report.findings)} Celery API uses in {report.files} Python files: "
        f"{counts[SUPPORTED]} supported, {counts[DIFFERENT]} different, "
        f"{counts[UNSUPPORTED]} unsupported."
    )
    unsupported = Counter(f.api for f in report.findings if f.status == UNSUPPORTED)
    if unsupported:
        lines.append("Unsupported: " + ", ".join(f"{a} ({n})" for a, n in unsupported.items()))
        lines.append(f"Read {GUIDE}features.md for the workarounds.")
    else:
        lines.append(f"Nothing unsupported: follow {GUIDE}README.md step by step.")
    return "\n".join(lines)


def format_json(report: Report) -> str:
    """The report as JSON: findings, skipped files and counts."""
    counts = report.counts
    return json.dumps(
        {
            "root": report.root,
            "findings": [asdict(f) for f in report.findings],
            "skipped": report.skipped,
            "summary": {
                "files": report.files,
                "uses": len(report.findings),
                **{status: counts[status] for status in (SUPPORTED, DIFFERENT, UNSUPPORTED)},
            },
        },
        indent=2,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``spinach-compat check PATH [--json]``; the exit status."""
    parser = argparse.ArgumentParser(
        prog="spinach-compat check",
        description="List the Celery APIs a codebase uses and how they migrate to "
        "spinach_compat (reads the files, never imports them).",
    )
    parser.add_argument("path", help="a directory (or one file) to check")
    parser.add_argument("--json", action="store_true", help="print JSON for tools")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    if not os.path.exists(args.path):
        print(f"Error: no such file or directory: {args.path}", file=sys.stderr)
        return EXIT_USAGE
    report = check_path(args.path)
    print(format_json(report) if args.json else format_text(report))
    return EXIT_UNSUPPORTED if report.counts[UNSUPPORTED] else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
