"""The ``spinach`` command: run workers, manage dead letters and periodic tasks.

Examples::

    spinach worker app.tasks:spin --queue high --queue default --threads 10
    spinach worker app.tasks --stop-when-queue-empty   # uses app.tasks.spin (or .engine)
    spinach worker app.tasks:spin --processes 4 --threads 8   # 4 supervised processes
    spinach dead-letters list app.tasks:spin --json
    spinach dead-letters retry app.tasks:spin --id 3f2a... --id 9b1c...
    spinach periodic list app.tasks:spin

``python -m spinach`` is the same command. Exit status: 0 on success, 1 when the workers
fail to start or run, 2 for a usage error or an application that cannot be loaded, 130 when
a second SIGINT made a stopping worker quit without waiting for its running jobs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from . import __version__, const, stop_signals
from .brokers.base import DeadLetter
from .dashboard.options import add_options as add_dashboard_options
from .engine import EXIT_INTERRUPTED as EXIT_INTERRUPTED  # re-exported: the exit status
from .engine import Engine
from .job import to_datetime
from .log_format import CachedTimeFormatter
from .supervisor import METRICS_DIR_VARIABLE
from .task import Task
from .worker_process.startup import (
    BrokerUnreachable,
    ConnectionRetry,
    broker_address,
    signal_aware_sleep,
    wait_for_broker,
)
from .workers import AsyncioWorkers, ThreadWorkers

logger = logging.getLogger("spinach.cli")

#: Format of the worker logs: time, level, logger, process and thread, then the message
#: (the process id tells apart the worker processes of ``--processes``).
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d/%(threadName)s] %(message)s"
LOG_LEVELS = ("debug", "info", "warning", "error")

#: Attributes looked up, in this order, when the application is named by its module alone.
DEFAULT_ENGINE_NAMES = ("spin", "engine")

EXIT_FAILURE = 1
EXIT_USAGE = 2
# EXIT_INTERRUPTED (130): the engine exits with it on a second signal while stopping.

#: Dead letters ``dead-letters retry|purge`` handles per round trip when no ``--id`` is
#: given, printing its progress after each: larger batches finish sooner, smaller ones
#: hold Redis for less time per script and report progress more often.
DEAD_LETTER_BATCH = 500

#: Widths of the reason and payload columns of ``dead-letters list``.
REASON_WIDTH = 80
PAYLOAD_WIDTH = 60


class CLIError(Exception):
    """A problem reported as one line on stderr, ending the command with ``status``."""

    def __init__(self, message: str, status: int = EXIT_USAGE):
        super().__init__(message)
        self.status = status


# -- entry point ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``spinach`` command with ``argv`` (default: ``sys.argv[1:]``); its exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except CLIError as exc:
        _report_error(exc, args.log_level)
        return exc.status


def _report_error(exc: CLIError, log_level: str) -> None:
    """Print ``spinach: <message>``, after the traceback of the cause at debug level."""
    cause = exc.__cause__
    if log_level == "debug" and cause is not None:
        traceback.print_exception(type(cause), cause, cause.__traceback__, file=sys.stderr)
    print(f"spinach: {exc}", file=sys.stderr)


# -- argument parsing ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole command, one sub-command per action."""
    parser = argparse.ArgumentParser(
        prog="spinach",
        description="Spinach background jobs: run workers, manage dead letters and periodic tasks.",
    )
    parser.add_argument("--version", action="version", version=f"spinach {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()
    _add_worker_parser(commands, common)
    _add_dead_letters_parser(commands, common)
    _add_periodic_parser(commands, common)
    _add_dashboard_parser(commands, common)
    return parser


def _common_options() -> argparse.ArgumentParser:
    """Options every sub-command takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "app",
        metavar="MODULE[:ATTR]",
        help="the Engine, as module:attribute (e.g. app.tasks:spin); a module alone means "
        f"its attribute {' or '.join(repr(n) for n in DEFAULT_ENGINE_NAMES)}. "
        "The current directory is searched first.",
    )
    common.add_argument(
        "--namespace", metavar="NS", type=_namespace, help="use this namespace, not the engine's"
    )
    common.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        type=str.lower,
        help="log level (default: info); debug also shows tracebacks of loading errors",
    )
    return common


def _add_worker_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``worker`` sub-command."""
    worker = commands.add_parser(
        "worker",
        parents=[common],
        help="run workers executing the jobs of an Engine",
        description="Run workers executing the jobs of an Engine until SIGTERM or SIGINT. "
        "A signal stops gracefully: no new job is fetched, running jobs finish and are "
        "reported, then the process exits 0. A second SIGINT (Ctrl-C) while stopping quits "
        "at once with status 130. Each job's start, end, duration and outcome are logged.",
    )
    worker.add_argument(
        "-q",
        "--queue",
        dest="queues",
        action="append",
        metavar="NAME",
        help=f"queue to consume; repeat it for several, highest priority first "
        f"(default: {const.DEFAULT_QUEUE})",
    )
    worker.add_argument(
        "-t",
        "--threads",
        type=_positive_int,
        default=const.DEFAULT_WORKER_NUMBER,
        metavar="N",
        help=f"jobs run at once (default: {const.DEFAULT_WORKER_NUMBER})",
    )
    worker.add_argument(
        "-p",
        "--processes",
        type=_positive_int,
        default=1,
        metavar="N",
        help="worker processes, each running --threads jobs at once (default: 1). Above 1, "
        "a supervisor runs N 'spinach worker' processes, restarts one that dies "
        "unexpectedly (with a growing delay) and forwards SIGTERM/SIGINT to them",
    )
    worker.add_argument(
        "--stop-when-queue-empty",
        action="store_true",
        help="stop once the queues are empty and no job runs (future jobs are not waited for)",
    )
    worker.add_argument(
        "--asyncio",
        action="store_true",
        help="run the jobs on one asyncio event loop (AsyncioWorkers) instead of threads",
    )
    worker.add_argument(
        "--metrics-port",
        type=_non_negative_int,
        metavar="PORT",
        help="serve Prometheus metrics of the jobs at http://HOST:PORT/metrics (needs "
        "spinach-queue[prometheus]); with --processes, the supervisor serves the sum of its "
        "worker processes",
    )
    _add_broker_retry_options(worker)
    worker.set_defaults(handler=run_worker)


def _add_broker_retry_options(worker: argparse.ArgumentParser) -> None:
    """How a starting worker waits for an unreachable broker: Celery's defaults."""
    default = ConnectionRetry()
    worker.add_argument(
        "--broker-retries",
        type=_non_negative_int,
        default=default.max_attempts,
        metavar="N",
        help="connection attempts at start before giving up with status 1 while the broker "
        f"is unreachable (default: {default.max_attempts}, as Celery's "
        "broker_connection_max_retries; 0 retries forever)",
    )
    worker.add_argument(
        "--broker-retry-interval",
        type=_positive_float,
        default=default.interval_start,
        metavar="SECONDS",
        help=f"first wait between two attempts, added to each next one up to "
        f"{default.interval_max:g} s (default: {default.interval_start:g}, as kombu's)",
    )
    worker.add_argument(
        "--no-broker-retry",
        action="store_true",
        help="give up at the first failed attempt "
        "(as Celery's broker_connection_retry_on_startup=False)",
    )


def _add_dead_letters_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``dead-letters list|retry|purge`` sub-commands."""
    dead_letters = commands.add_parser(
        "dead-letters",
        help="list, retry or purge the payloads no worker could run",
        description="Payloads that could not be decoded or name an unknown task are set "
        "aside as dead letters of the engine's namespace.",
    )
    actions = dead_letters.add_subparsers(dest="action", required=True, metavar="ACTION")
    helps = {
        "list": "print the dead letters, oldest first",
        "retry": "put dead letters back in their queue",
        "purge": "delete dead letters for good",
    }
    for action, help_text in helps.items():
        parser = actions.add_parser(action, parents=[common], help=help_text)
        parser.add_argument(
            "--id",
            dest="ids",
            action="append",
            metavar="ID",
            help="only the dead letter of this id; repeat it for several (default: all)",
        )
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(handler=run_dead_letters)


def _add_periodic_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``periodic list|remove`` sub-commands."""
    periodic = commands.add_parser(
        "periodic",
        help="list the periodic tasks of a namespace, or stop some",
        description="Periodic tasks fire once per period for the whole namespace. A worker "
        "registers those it knows at start; `remove` stops one whose code is gone.",
    )
    actions = periodic.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="print them, soonest first")
    listing.add_argument("--json", action="store_true", help="print JSON")
    remove = actions.add_parser("remove", parents=[common], help="stop periodic tasks")
    remove.add_argument("names", nargs="+", metavar="TASK", help="name of a periodic task")
    for parser in (listing, remove):
        parser.set_defaults(handler=run_periodic)


def _add_dashboard_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``dashboard`` sub-command (its own options: ``spinach.dashboard.options``)."""
    dashboard = commands.add_parser(
        "dashboard",
        parents=[common],
        help="serve a web dashboard and JSON API of the namespace",
        description="Serve a web dashboard and a JSON API of the engine's namespace: queues, "
        "workers, scheduled and periodic jobs, dead letters, finished jobs and their logs. "
        "Needs pip install 'spinach-queue[dashboard]'.",
    )
    dashboard.add_argument(
        "--broker", metavar="URL", help="a Redis URL to read instead of the engine's broker"
    )
    add_dashboard_options(dashboard)
    dashboard.set_defaults(handler=run_dashboard)


def int_at_least(
    text: str, minimum: int, *, expected: str = "not an integer:", least: str = ""
) -> int:
    """An argparse value: an int of at least ``minimum`` (``expected`` and ``least`` word
    the errors: "<expected> 'x'", "must be <minimum><least> or more, not <value>")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{expected} {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum}{least} or more, not {value}")
    return value


def _positive_int(text: str) -> int:
    """An argparse type: an int >= 1."""
    return int_at_least(text, 1)


def _non_negative_int(text: str) -> int:
    """An argparse type: an int >= 0."""
    return int_at_least(text, 0)


def _positive_float(text: str) -> float:
    """An argparse type: a float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _namespace(text: str) -> str:
    """An argparse type: a non-empty namespace."""
    if not text:
        raise argparse.ArgumentTypeError("a namespace cannot be empty")
    return text


# -- loading the application ---------------------------------------------------------------


def load_engine(spec: str) -> Engine:
    """The Engine named by ``module:attr`` or by a module alone, importing the module.

    The current directory is put first on ``sys.path``, as the application usually lives
    there. Raises ``CLIError`` naming the module and the cause when it cannot be loaded.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or (":" in spec and not attr):
        raise CLIError(f"invalid application {spec!r}: expected MODULE or MODULE:ATTR")
    _put_cwd_on_path()
    module = _import(module_name)
    if attr:
        return _engine_attribute(module, module_name, attr)
    for name in DEFAULT_ENGINE_NAMES:
        if isinstance(getattr(module, name, None), Engine):
            return getattr(module, name)
    names = " or ".join(repr(n) for n in DEFAULT_ENGINE_NAMES)
    raise CLIError(
        f"module '{module_name}' has no Engine named {names}: name it as '{module_name}:ATTR'"
    )


def _put_cwd_on_path() -> None:
    """Make modules of the current directory importable, ahead of installed ones."""
    cwd = os.getcwd()
    if sys.path[:1] not in ([cwd], [""]):
        sys.path.insert(0, cwd)


def _import(module_name: str) -> Any:
    """Import a module, turning any failure into a ``CLIError`` naming the cause."""
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        cause = str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
        raise CLIError(f"cannot import module '{module_name}': {cause}") from exc


def _engine_attribute(module: Any, module_name: str, attr: str) -> Engine:
    """The Engine at the (possibly dotted) attribute ``attr`` of ``module``."""
    value = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError as exc:
            raise CLIError(f"module '{module_name}' has no attribute '{attr}'") from exc
    if not isinstance(value, Engine):
        raise CLIError(f"'{module_name}:{attr}' is a {type(value).__name__}, not a spinach Engine")
    return value


def _prepared_engine(args: argparse.Namespace) -> Engine:
    """The engine named on the command line, with ``--namespace`` applied."""
    engine = load_engine(args.app)
    if args.namespace is not None:
        engine.namespace = args.namespace
    return engine


# -- worker --------------------------------------------------------------------------------


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """Log to ``stream`` (default: stderr) at ``level`` with time, level, logger, process
    and thread."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(CachedTimeFormatter(LOG_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)
    logging.captureWarnings(True)


def run_worker(args: argparse.Namespace) -> int:
    """``spinach worker``: run workers until a signal (or empty queues); the exit status.

    With ``--processes`` above 1, a supervisor runs that many worker processes instead
    (``spinach.supervisor``); it never imports the application itself. SIGTERM and SIGINT
    are caught from before the application loads: one received meanwhile stops the workers
    gracefully as soon as they started.
    """
    configure_logging(args.log_level)
    if args.processes > 1:
        from .supervisor import run_supervisor

        return run_supervisor(args)
    with stop_signals.caught():
        return _run_engine(_prepared_engine(args), args)


def _run_engine(engine: Engine, args: argparse.Namespace) -> int:
    """Wait for the broker, then run the workers of ``engine`` until they stop; the exit
    status."""
    retry = ConnectionRetry(
        enabled=not args.no_broker_retry,
        max_attempts=args.broker_retries,
        interval_start=args.broker_retry_interval,
        interval_step=args.broker_retry_interval,
    )
    with stop_signals.caught() as catcher:  # the one run_worker installed
        sleep = signal_aware_sleep(catcher)
        try:
            address = broker_address(engine.broker)
            if not wait_for_broker(engine.broker.start, address, retry, sleep=sleep):
                return 0  # a stop signal came first
        except BrokerUnreachable as exc:
            raise CLIError(str(exc), EXIT_FAILURE) from exc
    with _metrics(engine, args.metrics_port):
        try:
            engine.start_workers(
                number=args.threads,
                queue=args.queues or [const.DEFAULT_QUEUE],
                block=True,
                stop_when_queue_empty=args.stop_when_queue_empty,
                workers_class=AsyncioWorkers if args.asyncio else ThreadWorkers,
            )
        except Exception as exc:
            raise CLIError(f"workers failed: {type(exc).__name__}: {exc}", EXIT_FAILURE) from exc
    return 0


@contextlib.contextmanager
def _metrics(engine: Engine, port: int | None) -> Iterator[None]:
    """``--metrics-port``: serve the job metrics while the workers run; in a child of
    ``--processes`` (its supervisor serves them), record them for the supervisor."""
    if port is None and not os.environ.get(METRICS_DIR_VARIABLE):
        yield
        return
    from .contrib import prometheus  # the extra is needed only here

    if port is None:
        metrics = prometheus.record_for_supervisor(engine.namespace)
        try:
            yield
        finally:
            if metrics is not None:
                metrics.disconnect()
        return
    try:
        server = engine.serve_metrics(port)
    except (ImportError, OSError) as exc:
        raise CLIError(f"--metrics-port {port}: {exc}", EXIT_FAILURE) from exc
    with server:
        yield


# -- dead letters --------------------------------------------------------------------------


Action = Callable[[Engine, argparse.Namespace], None]


def run_dead_letters(args: argparse.Namespace) -> int:
    """``spinach dead-letters list|retry|purge``; the exit status."""
    actions: dict[str, Action] = {
        "list": _list_dead_letters,
        "retry": _retry_dead_letters,
        "purge": _purge_dead_letters,
    }
    return _run_broker_action(args, actions[args.action])


def _run_broker_action(args: argparse.Namespace, action: Action) -> int:
    """Run an action on the engine's broker; a broker error becomes a one-line failure."""
    engine = _prepared_engine(args)
    try:
        action(engine, args)
    except CLIError:
        raise
    except Exception as exc:  # e.g. the broker is unreachable
        raise CLIError(f"{args.action} failed: {type(exc).__name__}: {exc}", EXIT_FAILURE) from exc
    return 0


def _list_dead_letters(engine: Engine, args: argparse.Namespace) -> None:
    """Print the dead letters (those of ``--id`` only, when given), one per line or JSON."""
    letters = engine.broker.list_dead_letters()
    if args.ids:
        wanted = set(args.ids)
        letters = [letter for letter in letters if letter.id in wanted]
    if args.json:
        print(json.dumps([_letter_as_json(letter) for letter in letters], indent=2))
    elif not letters:
        print(f"No dead letters in namespace '{engine.namespace}'")
    else:
        for letter in letters:
            print(format_dead_letter(letter))


def _retry_dead_letters(engine: Engine, args: argparse.Namespace) -> None:
    """Put the dead letters back in their queue and say how many."""
    count = _in_batches(engine, args, engine.broker.retry_dead_letters, "Retried")
    _print_count(engine, args, "retried", f"Re-enqueued {count} dead letter(s)", count)


def _purge_dead_letters(engine: Engine, args: argparse.Namespace) -> None:
    """Delete the dead letters and say how many."""
    count = _in_batches(engine, args, engine.broker.purge_dead_letters, "Purged")
    _print_count(engine, args, "purged", f"Purged {count} dead letter(s)", count)


def _in_batches(
    engine: Engine, args: argparse.Namespace, action: Callable[[list[str]], int], verb: str
) -> int:
    """Run ``action`` on the ``--id`` dead letters, else on all of them in batches of
    ``DEAD_LETTER_BATCH``, printing the progress to stderr when there are several; how
    many it handled. Dead letters arriving meanwhile wait for the next run."""
    if args.ids:
        return action(args.ids)
    ids = [letter.id for letter in engine.broker.list_dead_letters()]
    done = 0
    for start in range(0, len(ids), DEAD_LETTER_BATCH):
        done += action(ids[start : start + DEAD_LETTER_BATCH])
        if len(ids) > DEAD_LETTER_BATCH:
            percent = 100 * min(start + DEAD_LETTER_BATCH, len(ids)) // len(ids)
            print(f"{verb} {done} of {len(ids)} dead letter(s) ({percent}%)",
                  file=sys.stderr, flush=True)  # fmt: skip
    return done


def _print_count(
    engine: Engine, args: argparse.Namespace, key: str, message: str, count: int
) -> None:
    """Print the outcome of retry or purge, noting the given ids that were not found."""
    missing = len(set(args.ids)) - count if args.ids else 0
    if args.json:
        print(json.dumps({key: count, "not_found": missing}))
        return
    note = f" ({missing} of the given ids not found)" if missing else ""
    print(f"{message} of namespace '{engine.namespace}'{note}")


# -- periodic tasks ------------------------------------------------------------------------


def run_periodic(args: argparse.Namespace) -> int:
    """``spinach periodic list|remove``; the exit status."""
    return _run_broker_action(args, _list_periodic if args.action == "list" else _remove_periodic)


def _list_periodic(engine: Engine, args: argparse.Namespace) -> None:
    """Print each periodic task with its next run."""
    entries = engine.broker.inspect_periodic_tasks()
    if args.json:
        print(json.dumps([{"task": name, "next_run": at} for at, name in entries], indent=2))
    elif not entries:
        print(f"No periodic tasks in namespace '{engine.namespace}'")
    for at, name in [] if args.json else entries:
        print(f"{name}  next run {to_datetime(at).isoformat(timespec='milliseconds')}")


def _remove_periodic(engine: Engine, args: argparse.Namespace) -> None:
    """Stop periodic tasks: registered as not periodic, the broker drops them."""
    still_declared = [n for n in args.names if (t := engine.tasks.get(n)) and t.periodicity]
    if still_declared:
        raise CLIError(
            f"{', '.join(still_declared)}: still periodic in this application's code, so its "
            "workers would register it again; remove the periodicity from the code first"
        )
    before = {name for _, name in engine.broker.inspect_periodic_tasks()}
    engine.broker.register_periodic_tasks(
        [Task(_never_run, name, const.DEFAULT_QUEUE, 0) for name in args.names]
    )
    removed = sorted(before & set(args.names))
    unknown = sorted(set(args.names) - before)
    print(
        f"Removed {len(removed)} periodic task(s) of namespace '{engine.namespace}'"
        + (f"; not periodic there: {', '.join(unknown)}" if unknown else "")
    )


# -- dashboard -----------------------------------------------------------------------------


def run_dashboard(args: argparse.Namespace) -> int:
    """``spinach dashboard``: serve the web dashboard until SIGINT or SIGTERM."""
    configure_logging(args.log_level)
    try:
        from .dashboard.command import NotServable, run
    except ImportError as exc:
        raise CLIError(f"{DASHBOARD_MISSING} ({exc})") from exc

    engine = _prepared_engine(args)
    broker = engine.broker
    if args.broker:
        from .brokers.redis import RedisBroker

        broker = RedisBroker(args.broker)
        broker.set_namespace(engine.namespace)
    try:
        return run(broker, args)
    except NotServable as exc:
        raise CLIError(str(exc)) from exc


#: What ``dashboard`` says when its dependencies are not installed.
DASHBOARD_MISSING = (
    "the dashboard needs its dependencies: pip install 'spinach-queue[dashboard]' "
    "(Starlette, uvicorn, Jinja2)"
)


def _never_run() -> None:
    """The function of the placeholder tasks ``periodic remove`` registers."""


def format_dead_letter(letter: DeadLetter) -> str:
    """One line: id, queue, when it failed (ISO, UTC), reason, the start of the payload."""
    failed_at = to_datetime(letter.failed_at).isoformat(timespec="seconds")
    reason = _one_line(letter.reason, REASON_WIDTH)
    payload = _one_line(letter.payload, PAYLOAD_WIDTH)
    return f"{letter.id}  {letter.queue}  {failed_at}  {reason}  {payload}"


def _letter_as_json(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON, its time as ISO UTC and its payload whole."""
    data = letter.to_dict()
    data["failed_at"] = to_datetime(letter.failed_at).isoformat()
    return data


def _one_line(text: str, width: int) -> str:
    """``text`` on one line (control characters escaped), cut to ``width`` characters."""
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return escaped if len(escaped) <= width else escaped[: width - 3] + "..."
