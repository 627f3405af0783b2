"""The ``spinach-compat`` command, with Celery's command line: ``-A proj worker ...``.

Examples::

    spinach-compat -A proj worker -Q high,default -c 8 -l info -n worker1@%h
    spinach-compat -A proj inspect ping
    spinach-compat -A proj purge -f
    python -m spinach_compat -A proj worker

``SPINACH_AS_CELERY=1 spinach-compat -A proj worker`` first installs the ``celery`` import
shim (``spinach_compat.install_as_celery()``), so a project whose code still says
``import celery`` runs unchanged.

``-P gevent`` runs the jobs as greenlets: the ``spinach-compat`` console script (module
``spinach_compat_cli``) applies gevent's monkey patching before this module is imported;
``python -m spinach_compat``, too late for that, refuses it.

``-A`` finds the app as Celery does: ``proj`` means ``proj.app``, else ``proj.celery``,
else (a package) the module ``proj.celery``, else the first ``Celery`` instance in
``proj``; ``proj.celery:app`` names it. Flags that the facade cannot honour stop the
command with an error naming the flag (exit status 2); see ``migration_guide/``.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import json
import os
import pprint
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from spinach import __version__ as spinach_version
from spinach.cli import int_at_least

from .. import __version__ as celery_api_version
from ..exceptions import UnsupportedFeature
from ..shim import CeleryAlreadyImported, install_as_celery
from .beat import add_beat_parser

if TYPE_CHECKING:
    from ..app.base import Celery

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69  #: no worker replied (as Celery's EX_UNAVAILABLE)

#: Worker flags refused, with why: ``(dest, flag, why)``.
UNSUPPORTED_WORKER_FLAGS: tuple[tuple[str, str, str], ...] = ()

#: Pools the facade runs: ``-P`` (and ``worker_pool``) values, ``processes`` being Celery's
#: other name of prefork.
POOLS = {
    "prefork": "prefork", "processes": "prefork", "threads": "threads", "solo": "solo",
    "gevent": "gevent",
}  # fmt: skip

#: Celery pools refused, with why and what to use instead.
REFUSED_POOLS = {
    "eventlet": "eventlet is deprecated by Celery and not supported: use -P gevent or "
    "-P threads for I/O-bound tasks, -P prefork (the default) for CPU-bound ones",
}

#: Environment switch: true installs the ``celery`` import shim before the app is imported.
AS_CELERY = "SPINACH_AS_CELERY"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


class UsageError(Exception):
    """A command-line problem: printed as ``Error: ...`` with exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        install_shim_if_asked()
    except (UsageError, CeleryAlreadyImported) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from .dispatch import run_early

    early = run_early(argv)  # multi and the refused sub-commands: their own arguments
    if early is not None:
        return early
    if argv[:1] == ["check"]:  # reads a codebase, loads no app (see spinach_compat.check)
        from ..check import main as check

        return check(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check":  # after global options (-A proj check PATH): no app either
        from ..check import main as check

        return check(args.rest)
    args.argv, args.start_cwd = argv, os.getcwd()  # a prefork pool's children run them again
    try:
        app = load_app(args)
        return args.handler(app, args)
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def install_shim_if_asked() -> None:
    """``SPINACH_AS_CELERY=1``: make ``import celery`` give the facade, before any app."""
    value = os.environ.get(AS_CELERY, "").strip().lower()
    if value in _TRUE:
        install_as_celery()
    elif value not in _FALSE:
        raise UsageError(f"{AS_CELERY}={os.environ[AS_CELERY]!r}: set it to 1 (or 0)")


# -- parsing ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole command: global options, then a sub-command."""
    parser = argparse.ArgumentParser(
        prog="spinach-compat", description="Celery-compatible command of spinach_compat."
    )
    version = f"spinach-queue {spinach_version} (Celery {celery_api_version} API)"
    parser.add_argument("--version", action="version", version=version)
    _global_options(parser, None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    _worker_parser(commands, common)
    _purge_parser(commands, common)
    _add_other_commands(commands, common)
    add_beat_parser(commands, common, _loglevel)
    _dashboard_parser(commands, common)
    # handled by main() before parsing (it loads no app); here to be listed in --help
    check = commands.add_parser(
        "check", add_help=False, help="list the Celery APIs of a codebase (PATH [--json])"
    )
    check.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _dashboard_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """``dashboard`` (bin/dashboard.py), imported here: it imports this module."""
    from .dashboard import add_dashboard_parser

    add_dashboard_parser(commands, common)


def _add_other_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """status, control, call, result, report, shell (multi and the sub-commands refused are
    run before parsing: see ``dispatch``). Their modules are not named as Celery's
    ``celery.bin`` modules, which the import shim keeps refusing."""
    from . import calls, console, monitor, remote, report

    for module in (remote, calls, report, console, monitor):
        module.add_parsers(commands, common)
    commands.add_parser("multi", help="start and stop several workers (see bin/cluster.py)")


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """-A, -b, --result-backend, --workdir: before or after the sub-command."""
    parser.add_argument("-A", "--app", default=default, help="the app: MODULE or MODULE:ATTR")
    parser.add_argument("-b", "--broker", default=default, help="override broker_url")
    parser.add_argument("--result-backend", default=default, help="override result_backend")
    parser.add_argument("--workdir", default=default, help="change to this directory first")
    parser.add_argument("-q", "--quiet", action="store_true", default=default or False)


def _worker_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    worker = commands.add_parser("worker", parents=[common], help="start a worker")
    add = worker.add_argument
    add("-n", "--hostname", help="node name (default: celery@%%h)")
    add("-Q", "--queues", action="append", help="queues to consume, comma separated")
    add("-X", "--exclude-queues", action="append", help="queues not to consume")
    add(
        "-c",
        "--concurrency",
        type=_concurrency,
        help="child processes (prefork), threads or greenlets (gevent): N or auto "
        "(default: the CPU count)",
    )
    add("-P", "--pool", help="pool: prefork (default), threads, gevent or solo")
    add("-l", "--loglevel", default="WARNING", type=_loglevel, help="log level")
    add("-f", "--logfile", help="log to this file (%%n, %%h, %%i, %%I... expanded)")
    add("-I", "--include", action="append", help="extra modules to import, comma separated")
    add("-B", "--beat", action="store_true", help="also run beat, in a thread (see beat)")
    add("-s", "--schedule-filename", "--schedule", help="the schedule file of -B")
    add("--scheduler", help="the scheduler class of -B")
    add("--time-limit", type=float, help="task_time_limit, seconds")
    add("--soft-time-limit", type=float, help="task_soft_time_limit, seconds")
    add("--pidfile", help="write the process id to this file (%%n, %%h, %%i... expanded)")
    add("-O", dest="optimization", help="accepted, no effect")
    add("--prefetch-multiplier", type=int, help="worker_prefetch_multiplier (1: no prefetch)")
    for flag in ("--without-gossip", "--without-mingle", "--without-heartbeat"):
        add(flag, action="store_true", help="accepted, no effect")
    add("--heartbeat-interval", type=float, help="accepted, no effect")
    add("--celery-queues", action="append", help="also consume these Celery queues (interop)")
    add("--autoscale", type=_autoscale, help="MAX,MIN: grow and shrink the prefork children")
    add("--max-tasks-per-child", type=_limit, help="replace a prefork child after N tasks")
    add(
        "--max-memory-per-child",
        type=_limit,
        help="replace a prefork child after the task leaving it above KIB resident memory",
    )
    add("-D", "--detach", action="store_true", help="start the worker in the background")
    add("--uid", help="drop privileges to this user (name or id) before running tasks")
    add("--gid", help="drop privileges to this group (name or id) before running tasks")
    add("--umask", help="umask of the detached worker (-D)")
    add("--executable", help="the Python of the detached worker (-D)")
    add("-S", "--statedb", help="accepted: revocations persist in the broker")
    add("--metrics-port", type=_limit, metavar="PORT",
        help="serve Prometheus metrics of the tasks at :PORT/metrics (spinach-queue[prometheus]; "
        "a prefork parent serves the sum of its children)")  # fmt: skip
    add("-E", "--task-events", "--events", action="store_true", default=None,
        help="send task events (celery events, Flower): see spinach_compat.events")  # fmt: skip
    worker.set_defaults(handler=run_worker)


def _purge_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    purge = commands.add_parser("purge", parents=[common], help="discard waiting tasks")
    purge.add_argument("-f", "--force", action="store_true", help="do not ask")
    purge.add_argument("-Q", "--queues", action="append", help="only these queues")
    purge.add_argument("-X", "--exclude-queues", action="append", help="not these queues")
    purge.set_defaults(handler=run_purge)


def _concurrency(text: str) -> int:
    """``-c``: a count of 1 or more, or ``auto`` (the CPUs this process may use)."""
    if text.strip().lower() == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else _cpus()
    return int_at_least(text, 1, expected="expected a number or 'auto', not")


def _cpus() -> int:
    return os.cpu_count() or 1


def _limit(text: str) -> int:
    """``--max-*-per-child``: a whole number, 0 meaning no limit (as Celery)."""
    return int_at_least(text, 0, expected="expected a whole number, not", least=" (no limit)")


def _autoscale(text: str) -> Any:
    from ..worker.autoscale import parse_autoscale

    try:
        return parse_autoscale(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _loglevel(text: str) -> str:
    level = text.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL"):
        raise argparse.ArgumentTypeError(f"invalid log level {text!r}")
    return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level)


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


# -- finding the app ----------------------------------------------------------------------


def load_app(args: argparse.Namespace) -> Any:
    """The app of ``-A``, with ``-b`` and ``--result-backend`` applied."""
    if args.workdir:
        os.chdir(args.workdir)
    if not args.app:
        raise UsageError("no app given: use -A MODULE[:ATTR] (e.g. -A proj)")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    app = find_app(args.app)
    if args.broker:
        app.conf.broker_url = args.broker
    if args.result_backend:
        app.conf.result_backend = args.result_backend
    return app


def find_app(spec: str) -> Any:
    """The ``Celery`` app of ``spec``, looked up as Celery's ``find_app``."""
    from ..app.base import Celery

    found = _symbol(spec)
    if isinstance(found, ModuleType) and ":" not in spec:
        found = _app_in_module(spec, found)
    if not isinstance(found, Celery):
        raise UsageError(f"Unable to load the app {spec!r}: it is not a Celery app: {found!r}")
    return found


def _symbol(spec: str) -> Any:
    """``module:attr``, else ``package.attr``, else the module ``spec``."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        value: Any = _import(spec, module_name)
        for part in attr.split("."):
            if not hasattr(value, part):
                raise UsageError(f"Unable to load the app {spec!r}: no attribute {part!r}")
            value = getattr(value, part)
        return value
    parent, _, attr = spec.rpartition(".")
    if parent:
        try:
            module = importlib.import_module(parent)
        except ImportError:
            module = None
        if module is not None and hasattr(module, attr):
            return getattr(module, attr)
    return _import(spec, spec)


def _app_in_module(spec: str, module: ModuleType) -> Any:
    """``module.app``, else ``module.celery``, else ``<package>.celery``, else any app."""
    from ..app.base import Celery

    for name in ("app", "celery"):
        value = getattr(module, name, None)
        if value is not None and not isinstance(value, ModuleType):
            return value
    if getattr(module, "__path__", None):
        try:
            return find_app(f"{spec}.celery")
        except UsageError:
            pass
    for value in vars(module).values():
        if isinstance(value, Celery):
            return value
    raise UsageError(f"Unable to load the app {spec!r}: module {spec!r} has no Celery app")


def _import(spec: str, module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"Unable to load the app {spec!r}: {exc}") from exc


# -- commands -----------------------------------------------------------------------------


def check_worker_flags(args: argparse.Namespace) -> None:
    """Raise ``UsageError`` for a worker flag the facade cannot honour."""
    for dest, flag, why in UNSUPPORTED_WORKER_FLAGS:
        if getattr(args, dest, None) not in (None, False):
            raise UsageError(
                f"worker option {flag} is not supported by spinach_compat: {why} "
                "(see migration_guide/)"
            )


def worker_pool(name: str | None, setting: Any, broker_url: str | None = None) -> str:
    """The pool to run: ``-P``, else ``worker_pool``, else prefork (as Celery), but threads
    on a ``memory://`` broker, which lives in one process (prefork asked for on it is
    refused); refused and unknown pools are a ``UsageError`` naming what to use."""
    in_process = str(broker_url or "").startswith("memory://")
    chosen = name or setting or ("threads" if in_process else "prefork")
    where = f"-P {chosen}" if name else f"worker_pool={chosen!r}"
    if not isinstance(chosen, str):
        raise UsageError(
            f"{where}: custom pool classes are not supported by spinach_compat: "
            "use prefork (the default), threads, gevent or solo (see migration_guide/)"
        )
    if chosen in REFUSED_POOLS:
        raise UsageError(f"{where}: {REFUSED_POOLS[chosen]} (see migration_guide/)")
    if chosen not in POOLS:
        raise UsageError(f"{where}: unknown pool {chosen!r}: use prefork (the default), "
                         "threads, gevent or solo (see migration_guide/)")  # fmt: skip
    if chosen == "gevent" and name:
        _check_patched()
    if in_process and POOLS[chosen] == "prefork":
        raise UsageError(f"{where}: a memory:// broker lives in one process, where child "
                         "processes cannot reach it: use -P threads or solo, or a redis:// "
                         "broker (see migration_guide/)")  # fmt: skip
    return POOLS[chosen]


def _check_patched() -> None:
    """``-P gevent`` in a process that gevent did not patch before importing us."""
    from spinach_compat_cli import is_patched

    if not is_patched():
        raise UsageError(
            "-P gevent: gevent's monkey patching must come before anything is imported, "
            "which python -m spinach_compat cannot do: run the spinach-compat command, or "
            "python -m spinach_compat_cli (see migration_guide/features.md#worker-pools)"
        )


def _patch_and_run_again(args: argparse.Namespace) -> None:
    """``worker_pool='gevent'`` found in the app's settings, after the imports: run this
    command again, patched from its start (``-P gevent`` added); exit 1 without gevent."""
    from spinach_compat_cli import EXIT_NO_GEVENT, GEVENT_EXTRA, is_patched

    if is_patched():
        return
    if importlib.util.find_spec("gevent") is None:
        print(f"Error: worker_pool='gevent' needs gevent, which is not installed: "
              f"{GEVENT_EXTRA}", file=sys.stderr)  # fmt: skip
        raise SystemExit(EXIT_NO_GEVENT)
    sys.stdout.flush()
    os.chdir(args.start_cwd)
    argv = [*args.argv, "-P", "gevent"]
    os.execv(sys.executable, [sys.executable, "-m", "spinach_compat_cli", *argv])


def run_worker(app: Celery, args: argparse.Namespace) -> int:
    """``worker``: run a worker until SIGTERM/SIGINT."""
    from ..exceptions import ImproperlyConfigured
    from ..worker import Worker
    from ..worker.queues import worker_queues

    check_worker_flags(args)
    pool = worker_pool(args.pool, app.conf.get("worker_pool"), app.conf.broker_url)
    if pool == "gevent":
        _patch_and_run_again(args)
    if args.include:
        app.conf.include = (*app.conf.include, *_split(args.include))
    if args.time_limit is not None:
        app.conf.task_time_limit = args.time_limit
    if args.soft_time_limit is not None:
        app.conf.task_soft_time_limit = args.soft_time_limit
    if args.prefetch_multiplier is not None:
        app.conf.worker_prefetch_multiplier = args.prefetch_multiplier
    queues = None  # without -Q nor -X: decided once the app's modules are imported
    if args.queues or args.exclude_queues:
        try:
            queues = worker_queues(app, _split(args.queues), _split(args.exclude_queues))
        except ImproperlyConfigured as exc:
            raise UsageError(str(exc)) from exc
    _check_prefork_only(args, pool)
    logfile, pidfile = _file_names(args)
    options = dict(
        hostname=args.hostname, queues=queues, loglevel=args.loglevel, logfile=logfile,
        beat=args.beat, quiet=args.quiet, pidfile=pidfile, pool=pool,
    )  # fmt: skip
    if pool == "prefork":
        worker = _prefork_worker(app, args, options)
    else:
        concurrency = 1 if pool == "solo" else args.concurrency
        worker = Worker(app, concurrency=concurrency, **options)
    _celery_bridge(app, worker, _split(args.celery_queues))
    _metrics(app, worker, args.metrics_port)
    _task_events(app, worker, args)
    _process_options(args, logfile, pidfile)  # every usage error was found: detach
    _embedded_beat(app, worker, args)
    return worker.start()


#: Worker flags that act on prefork children: ``(dest, flag)``.
PREFORK_ONLY_FLAGS = (
    ("autoscale", "--autoscale"),
    ("max_tasks_per_child", "--max-tasks-per-child"),
    ("max_memory_per_child", "--max-memory-per-child"),
)


def _check_prefork_only(args: argparse.Namespace, pool: str) -> None:
    """A prefork-only flag with another pool would be ignored: refuse it instead."""
    if pool == "prefork":
        return
    for dest, flag in PREFORK_ONLY_FLAGS:
        if getattr(args, dest) is not None:
            raise UsageError(f"worker option {flag} acts on the child processes of the "
                             f"prefork pool, not -P {pool}: remove it, or run -P prefork "
                             "(see migration_guide/)")  # fmt: skip


def _file_names(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """``--logfile`` and ``--pidfile`` with their ``%`` abbreviations expanded (see
    ``spinach_compat.worker.daemon``; the pidfile is the worker process's: index 0)."""
    from ..worker import default_nodename
    from ..worker.daemon import DaemonError, node_format

    nodename = default_nodename(args.hostname)
    try:
        return node_format(args.logfile, nodename), node_format(args.pidfile, nodename, index=0)
    except DaemonError as exc:
        raise UsageError(str(exc)) from exc


def _process_options(args: argparse.Namespace, logfile: str | None, pidfile: str | None) -> None:
    """``-D`` (this process exits, a detached one runs the command again), then
    ``--uid``/``--gid``, then the ``--statedb`` line."""
    from ..worker import _live_pid_in
    from ..worker.daemon import DaemonError, detach, drop_privileges, parse_umask, without_detach
    from ..worker.prefork import is_child

    try:
        if args.detach:
            holder = _live_pid_in(pidfile) if pidfile else None
            if holder is not None:
                raise SystemExit(f"ERROR: Pidfile ({pidfile}) already exists.\n"
                                 f"Seems we're already running? (pid: {holder})")  # fmt: skip
            detach(without_detach(args.argv), logfile, parse_umask(args.umask), args.executable)
        drop_privileges(args.uid, args.gid)
    except DaemonError as exc:
        raise UsageError(str(exc)) from exc
    if args.statedb and not is_child():
        print(f"--statedb {args.statedb}: not needed, revocations persist in the broker",
              file=sys.stderr)  # fmt: skip


def _prefork_worker(app: Celery, args: argparse.Namespace, options: dict[str, Any]) -> Any:
    """The parent of ``-P prefork`` (it supervises the children), or one of its children."""
    from ..worker import Worker
    from ..worker.prefork import ChildLimiter, ChildReporter, Limits, is_child

    if is_child():  # one job at a time; the parent writes the pidfile and the banner
        worker = Worker(app, concurrency=1, role="child", **{**options, "pidfile": None})
        limits = Limits.of(app, args.max_tasks_per_child, args.max_memory_per_child)
        reporter = ChildReporter(app.namespace, ChildLimiter(limits, worker.stop_to_recycle))
        reporter.connect()
        worker.on_ready = reporter.ready
        return worker
    bounds = args.autoscale
    worker = Worker(app, concurrency=args.concurrency, role="parent", **options)
    if bounds is not None:  # the pool starts with MIN children (as Celery's)
        worker.concurrency, worker.autoscale = bounds.minimum, bounds
    worker.run_parent = functools.partial(
        _run_prefork_parent, argv=args.argv, cwd=args.start_cwd, bounds=bounds,
        metrics_port=args.metrics_port,
    )  # fmt: skip
    return worker


def _metrics(app: Celery, worker: Any, port: int | None) -> None:
    """``--metrics-port``: a service counting the tasks (serving them, but in a prefork
    child: its parent serves the sum); refused at once without the extra."""
    from ..worker.metrics import MetricsService

    if port is not None:
        try:
            import spinach.contrib.prometheus  # noqa: F401
        except ImportError as exc:
            raise UsageError(f"--metrics-port: {exc}") from exc
    if MetricsService.wanted(port, worker.role):
        worker.services.append(
            MetricsService(app.namespace, port if worker.role == "main" else None)
        )


def _run_prefork_parent(
    worker: Any, argv: list[str], cwd: str, bounds: Any, metrics_port: int | None = None
) -> int:
    """The parent's run, once it is set up: its children, scaled with ``--autoscale``."""
    from ..worker.autoscale import Autoscaler, queue_waiting
    from ..worker.prefork import run_parent

    scaler = None
    if bounds is not None:
        from ..app.priority import band_queues, priority_steps

        queues = band_queues(worker.queues, priority_steps(worker.app.conf))
        scaler = Autoscaler(bounds, queue_waiting(worker.app.engine.broker.queue_lengths, queues))
    from ..beat import BeatThread
    from ..events.worker import WorkerEvents

    events = next((s for s in worker.services if isinstance(s, WorkerEvents)), None)
    beat = next((s for s in worker.services if isinstance(s, BeatThread)), None)
    return run_parent(worker, argv, cwd, scaler, worker.concurrency, metrics_port, events, beat)


def _task_events(app: Celery, worker: Any, args: argparse.Namespace) -> None:
    """The worker's events, as Celery's: worker events (online, heartbeats, offline) unless
    ``--without-heartbeat``, task events with ``-E`` (or ``worker_send_task_events``, or
    later ``enable_events``). A prefork parent sends the worker events (``run_parent`` runs
    them), its children their tasks'."""
    from ..events.worker import WorkerEvents, events_enabled

    role = worker.role
    worker.services.append(WorkerEvents(
        app, worker.hostname, tasks=events_enabled(app, args.task_events),
        runs_tasks=role != "parent", heartbeats=role != "child" and not args.without_heartbeat,
    ))  # fmt: skip


def _embedded_beat(app: Celery, worker: Any, args: argparse.Namespace) -> None:
    """``-B``: beat in a thread of the worker, a service (see ``spinach_compat.beat``). A
    prefork pool has one, in its parent (``run_parent`` runs it), as Celery's has one."""
    if args.beat and worker.role != "child":
        from ..beat import BeatThread

        scheduler = args.scheduler or app.conf.get("beat_scheduler")
        worker.services.append(BeatThread(
            app, schedule_filename=args.schedule_filename, scheduler_cls=scheduler,
        ))  # fmt: skip


def _celery_bridge(app: Celery, worker: Any, celery_queues: list[str]) -> None:
    """``--celery-queues``: consume them natively too, and bridge Celery's messages (a
    service of the worker: built before it starts, run from when it is ready). A prefork
    parent only checks them: its children run the bridge."""
    if not celery_queues:
        return
    from ..exceptions import UnsupportedFeature
    from ..interop import WorkerBridge
    from ..interop.bridge import check_bridgeable
    from ..worker.queues import worker_queues

    _refuse_bridging_legacy_queues(app, celery_queues)
    try:
        check_bridgeable(app)
    except UnsupportedFeature as exc:
        raise UsageError(str(exc)) from exc
    queues = worker.queues or worker_queues(app)
    worker.queues = list(dict.fromkeys([*queues, *celery_queues]))
    if worker.role != "parent":
        worker.services.append(WorkerBridge(app, celery_queues))


def _refuse_bridging_legacy_queues(app: Celery, celery_queues: list[str]) -> None:
    """A bridged queue of legacy-routed tasks would send their messages back to us."""
    from ..interop.legacy import legacy_queues

    app.loader.import_default_modules()  # task names decide which tasks are legacy
    overlap = sorted(set(celery_queues) & legacy_queues(app))
    if overlap:
        raise UsageError(
            f"--celery-queues {','.join(overlap)}: tasks routed to legacy Celery workers are "
            "published there, and this worker would take their messages back; give legacy "
            "tasks a queue of their own (see migration_guide/README.md"
            "#step-3-run-new-workers-beside-the-old-ones)"
        )


def pretty_reply(reply: Any) -> tuple[str, str]:
    """``(status, text)`` of a worker's reply as Celery's command line shows them: list
    items as ``* item`` lines, ``{'ok': ...}``/``{'error': ...}`` unwrapped and indented,
    other mappings as indented JSON."""
    if isinstance(reply, list):
        return "OK", "\n".join(f"* {item}" for item in reply) or "- empty -"
    if isinstance(reply, dict) and ("ok" in reply or "error" in reply):
        status = "OK" if "ok" in reply else "ERROR"
        _, text = pretty_reply(reply.get("ok", reply.get("error")))
        return status, "\n".join(f"    {line}" for line in text.splitlines())
    if isinstance(reply, dict):
        return "OK", json.dumps(reply, sort_keys=True, indent=4, default=str)
    return "OK", reply if isinstance(reply, str) else pprint.pformat(reply)


def run_purge(app: Celery, args: argparse.Namespace) -> int:
    """``purge``: discard the tasks waiting in the app's queues (asks first without -f), with
    Celery's prompt and lines."""
    from ..worker.queues import declared_queues

    excluded = set(_split(args.exclude_queues))
    queues = sorted({q for q in _split(args.queues) or declared_queues(app) if q not in excluded})
    if not queues:
        return EXIT_OK
    what = "queue" if len(queues) == 1 else "queues"
    if not args.force:
        print(f"WARNING:This will remove all tasks from {len(queues)} {what}: "
              f"{', '.join(queues)}.\n         There is no undo for this operation!\n\n"
              "(to skip this prompt use the -f option)\nAre you sure you want to delete all "
              "tasks? [y/N]: ", end="", flush=True)  # fmt: skip
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("Aborted!", file=sys.stderr)
            return EXIT_FAILURE
    count = app.control.purge(queues=queues)
    if count:
        print(f"Purged {count} message{'s' if count != 1 else ''} from {len(queues)} known task "
              f"{what}.")  # fmt: skip
    else:
        print(f"No messages purged from {len(queues)} {what}.")
    return EXIT_OK


# -- celery.bin.celery.celery -------------------------------------------------------------


class CeleryCommandGroup:
    """``celery.bin.celery.celery``: Celery's click group, as far as projects use it.

    Calling it (or its ``main``) runs this command with ``args``. The command is not built
    on click, so adding click commands to it is refused.
    """

    name = "celery"

    def main(
        self, args: Sequence[str] | None = None, prog_name: str | None = None,
        complete_var: str | None = None, standalone_mode: bool = True, **extra: Any,
    ) -> int:  # fmt: skip
        """Run the command; exit with its status (``standalone_mode``) or return it."""
        status = main(args)
        if standalone_mode:
            sys.exit(status)
        return status

    __call__ = main

    def add_command(self, cmd: Any, name: str | None = None) -> None:
        self._refuse("add_command()")

    def command(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse("command()")

    def group(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse("group()")

    @staticmethod
    def _refuse(what: str) -> None:
        raise UnsupportedFeature(
            f"celery.bin.celery.celery.{what} is not supported by spinach_compat: the "
            "spinach-compat command is not built on click. Run your click command as a "
            "program of its own, loading the app with spinach_compat.bin.celery.find_app() "
            "(see migration_guide/features.md#worker-command-line)"
        )


#: What ``from celery.bin.celery import celery`` gives under the ``celery`` import shim.
celery = CeleryCommandGroup()

from ..surface import module_getattr  # noqa: E402  (Celery names refused: see surface)

__getattr__ = module_getattr(__name__)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
