"""``spinach-compat beat``: Celery's beat command, a long-running scheduler process.

Examples::

    spinach-compat -A proj beat -l INFO
    spinach-compat -A proj beat -S django_celery_beat.schedulers:DatabaseScheduler
    SPINACH_AS_CELERY=1 celery -A proj beat -S redbeat.RedBeatScheduler --max-interval 10

It runs ``spinach_compat.beat.Service`` with the scheduler of ``-S`` (else the
``beat_scheduler`` setting, Celery's ``PersistentScheduler`` by default) until SIGTERM or
SIGINT, then saves the schedule, gives up the lease and exits 0. Any number of beat
processes may run over one broker: one leads and sends, the others take over when it dies
(see ``spinach_compat.app.beat_lease``; ``--lease-term`` sets its term).

A scheduler that cannot be loaded or set up (a path that does not import, a database
scheduler whose tables do not exist) is a configuration error: one line ``Error: ...``
naming it and the cause, exit status 1 (``EX_CONFIG_ERROR``), so a supervisor does not
restart it in a loop hoping it changes. ``--detach``, ``--uid``, ``--gid`` and
``--enable-remote-control`` are refused (exit status 2): run beat in the foreground under
a process supervisor with the user set.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from spinach import stop_signals
from spinach.log_format import CachedTimeFormatter

if TYPE_CHECKING:
    from ..app.base import Celery
    from ..beat import Service

#: Exit status of a configuration error (a scheduler that does not load or set up).
EX_CONFIG_ERROR = 1

#: Beat flags refused, with why: ``(dest, flag, why)``.
REFUSED_FLAGS = (
    ("detach", "--detach", "run beat in the foreground under a process supervisor"),
    ("uid", "--uid", "set the user in your process supervisor"),
    ("gid", "--gid", "set the group in your process supervisor"),
    ("remote_control", "--enable-remote-control", "beat does not answer inspect ping"),
)

LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"

logger = logging.getLogger("spinach_compat.beat")


def add_beat_parser(commands: Any, common: argparse.ArgumentParser, loglevel: Any) -> None:
    """The ``beat`` sub-command's parser (``loglevel``: the ``-l`` value parser)."""
    beat = commands.add_parser("beat", parents=[common], help="run the periodic task scheduler")
    add = beat.add_argument
    add("-s", "--schedule", help="the schedule file of the default scheduler")
    add("-S", "--scheduler", help="scheduler class: module:Class, module.Class or an alias")
    add("--max-interval", type=_positive_float, help="max seconds between schedule checks")
    add("-n", "--hostname", help="this beat's name (logs and the lease)")
    add("-l", "--loglevel", default="WARNING", type=loglevel, help="log level")
    add("-f", "--logfile", help="log to this file")
    add("--pidfile", help="write the process id to this file")
    add("--umask", type=_octal, help="file creation mask (octal)")
    add("--lease-term", type=_positive_float, help="seconds of a beat lease term (not Celery's)")
    add("--executable", help="accepted, no effect")
    add("--enable-remote-control", dest="remote_control", action="store_true", default=None,
        help=argparse.SUPPRESS)  # fmt: skip
    add("--no-enable-remote-control", dest="remote_control", action="store_false",
        help="accepted (the default here)")  # fmt: skip
    add("--detach", action="store_true", default=None, help=argparse.SUPPRESS)
    add("--uid", help=argparse.SUPPRESS)
    add("--gid", help=argparse.SUPPRESS)
    beat.set_defaults(handler=run_beat)


def _octal(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal number: {text!r}") from None


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return value


def run_beat(app: Celery, args: argparse.Namespace) -> int:
    """``beat``: run the scheduler until SIGTERM/SIGINT; the exit status."""
    from .celery import UsageError

    for dest, flag, why in REFUSED_FLAGS:
        if getattr(args, dest, None) not in (None, False):
            raise UsageError(f"beat option {flag} is not supported by spinach_compat: {why} "
                             "(see migration_guide/features.md#periodic-tasks-beat)")  # fmt: skip
    if args.umask is not None:
        os.umask(args.umask)
    setup_logging(args.loglevel, args.logfile)
    app.loader.import_default_modules()  # Django's setup, the tasks (for their routes)
    app.finalize(auto=True)  # on_after_finalize receivers may add periodic tasks
    service = build_service(app, args)
    with _pidfile(args.pidfile), stop_signals.caught() as catcher:
        error = prepare(service)
        if error:
            print(f"Error: {error}", file=sys.stderr)
            return EX_CONFIG_ERROR
        if not args.quiet:
            print(banner(service), flush=True)
        service.start(sleep=_signal_aware_sleep(catcher, service))
    return 0


def build_service(app: Celery, args: argparse.Namespace) -> Service:
    from ..beat import Service

    return Service(
        app, max_interval=args.max_interval, schedule_filename=args.schedule,
        scheduler_cls=args.scheduler or app.conf.get("beat_scheduler"),
        hostname=args.hostname, lease_term=args.lease_term,
    )  # fmt: skip


def prepare(service: Service) -> str | None:
    """Build the scheduler (its ``setup_schedule`` runs); the error line if it fails."""
    from ..app.beat_schedulers import BeatSchedulerError

    try:
        _ = service.scheduler
    except BeatSchedulerError as exc:
        return str(exc)
    except Exception as exc:
        return f"beat scheduler {_name(service.scheduler_cls)!r} failed to start: " + _why(exc)
    return None


def _why(exc: Exception) -> str:
    """The cause, with the fix for a database table that does not exist."""
    text = f"{type(exc).__name__}: {exc}"
    lowered = str(exc).lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        text += (" (a database table is missing: apply the scheduler's migrations, e.g. "
                 "python manage.py migrate)")  # fmt: skip
    return text


def _name(cls: Any) -> str:
    return f"{cls.__module__}.{cls.__qualname__}" if isinstance(cls, type) else str(cls)


def banner(service: Service) -> str:
    """What beat prints when it starts, as Celery's banner."""
    app, scheduler = service.app, service.scheduler
    lines = [
        "spinach-compat beat is starting.",
        "LocalTime -> " + app.now().astimezone().strftime("%Y-%m-%d %H:%M:%S"),
        "Configuration ->",
        f"    . broker -> {_masked(app.conf.broker_url)}",
        f"    . scheduler -> {_name(type(scheduler))}",
        f"    . lease -> namespace {app.namespace!r}, term {service.lease_term} s",
        f"    . maxinterval -> {scheduler.max_interval} s",
    ]
    if scheduler.info:
        lines.append(scheduler.info)
    return "\n".join(lines)


def _masked(url: Any) -> str:
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(url))


def _signal_aware_sleep(catcher: Any, service: Service) -> Callable[[float], None] | None:
    """A sleep that ends at SIGTERM/SIGINT and stops the service (None: default sleep)."""
    if catcher is None:
        return None

    def sleep(seconds: float) -> None:
        if catcher.wait(seconds):
            service.stop()

    return sleep


def setup_logging(loglevel: str, logfile: str | None) -> None:
    """Log at ``loglevel`` to ``logfile`` (else stderr), unless ``setup_logging`` has
    receivers (as Celery)."""
    from .. import signals

    level = getattr(logging, loglevel, logging.WARNING)
    options = {"loglevel": level, "logfile": logfile, "format": LOG_FORMAT, "colorize": False}
    if signals.setup_logging.send(sender=None, **options):
        return
    handler: logging.Handler = (
        logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(CachedTimeFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    signals.after_setup_logger.send(sender=None, logger=logging.getLogger(), **options)


class _pidfile:
    """Write the pid file on entry (refusing one held by a live process), remove on exit."""

    def __init__(self, path: str | None):
        self.path = path

    def __enter__(self) -> None:
        if not self.path:
            return
        try:
            with open(self.path, encoding="ascii") as file:
                pid = int(file.read().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and pid != os.getpid() and _alive(pid):
            raise SystemExit(f"ERROR: Pidfile ({self.path}) already exists: beat {pid} runs")
        with open(self.path, "w", encoding="ascii") as file:
            file.write(f"{os.getpid()}\n")

    def __exit__(self, *exc: Any) -> None:
        if self.path:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
